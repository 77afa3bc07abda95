"""`make run` stops what it started on SIGTERM (a container stop), as on Ctrl-C."""

from __future__ import annotations

import os
import signal

import pytest

from passos_magicos.launcher import stop_on_sigterm


def test_sigterm_ends_the_run_like_ctrl_c() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), stop_on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # a no-op that gives Python a chance to run the handler
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
