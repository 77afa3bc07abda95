"""Slack incoming-webhook sender, with retries and exponential backoff.

- Retries on 429 (honouring `Retry-After`, capped), on 5xx, on timeouts and connection errors;
  any other 4xx is final (the payload or the webhook is wrong: repeating will not help).
- Never raises: every outcome is a `Delivery`, with a pt-BR reason when nothing was delivered.
- The webhook URL is a secret: it is never logged nor put in a reason (only status/attempts).
- Delivery is at least once: a timeout after Slack accepted the message leads to a retry.

Stdlib `urllib` only (no HTTP client dependency for a few small POSTs).
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from passos_magicos.settings import Settings

logger = logging.getLogger(__name__)

NOT_CONFIGURED: Final = "SLACK_WEBHOOK_URL não configurado: nada foi enviado"
RETRY_AFTER_CAP_SECONDS: Final = 30.0  # a longer Retry-After is waited for this long at most
BACKOFF_CAP_SECONDS: Final = 60.0  # the doubling stops here
ERROR_BODY_CHARS: Final = 200  # of Slack's error text ("invalid_blocks", "no_service"...)


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    reason: str | None = None  # why it was not delivered (pt-BR)
    status: int | None = None  # last HTTP status, if Slack answered at all
    attempts: int = 0  # HTTP requests made (0: nothing was tried)


@dataclass(frozen=True)
class _Attempt:
    delivered: bool
    status: int | None = None
    reason: str = ""
    retryable: bool = False
    retry_after: float | None = None  # seconds asked by Slack (429)


class SlackSender:
    """POSTs `{"text": ..., "blocks": [...]}` to the webhook, retrying transient failures.

    `sleep` is injectable so that tests can check the waits without waiting.
    """

    def __init__(
        self,
        webhook_url: str | None,
        timeout: float = 5.0,
        max_attempts: int = 4,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout deve ser positivo")
        if max_attempts < 1:
            raise ValueError("max_attempts deve ser pelo menos 1")
        if backoff_seconds < 0:
            raise ValueError("backoff_seconds não pode ser negativo")
        self._webhook_url = webhook_url.strip() if webhook_url and webhook_url.strip() else None
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep

    @classmethod
    def from_settings(
        cls, settings: Settings, sleep: Callable[[float], None] = time.sleep
    ) -> SlackSender:
        secret = settings.SLACK_WEBHOOK_URL
        return cls(
            secret.get_secret_value() if secret is not None else None,
            timeout=settings.SLACK_TIMEOUT_SECONDS,
            max_attempts=settings.SLACK_MAX_ATTEMPTS,
            backoff_seconds=settings.SLACK_BACKOFF_SECONDS,
            sleep=sleep,
        )

    def __repr__(self) -> str:  # never the URL
        return (
            f"SlackSender(configurado={self.configured}, timeout={self.timeout}, "
            f"max_attempts={self.max_attempts}, backoff_seconds={self.backoff_seconds})"
        )

    @property
    def configured(self) -> bool:
        return self._webhook_url is not None

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based), without Retry-After."""
        return min(self.backoff_seconds * 2.0 ** (attempt - 1), BACKOFF_CAP_SECONDS)

    @property
    def worst_case_seconds(self) -> float:
        """An upper bound on how long one `send` can take (timeouts plus every wait)."""
        waits = sum(
            max(self.backoff(attempt), RETRY_AFTER_CAP_SECONDS)
            for attempt in range(1, self.max_attempts)
        )
        return self.max_attempts * self.timeout + waits

    def send(self, text: str, blocks: list[dict[str, Any]] | None = None) -> Delivery:
        if self._webhook_url is None:
            logger.info("Slack: %s", NOT_CONFIGURED)
            return Delivery(False, NOT_CONFIGURED, attempts=0)
        if urlsplit(self._webhook_url).scheme not in {"http", "https"}:
            reason = "SLACK_WEBHOOK_URL inválido (use uma URL http ou https): nada foi enviado"
            logger.warning("Slack: %s", reason)
            return Delivery(False, reason, attempts=0)

        payload: dict[str, Any] = {"text": text}
        if blocks:
            payload["blocks"] = blocks
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")

        attempt = 0
        outcome = _Attempt(False)
        while attempt < self.max_attempts:
            attempt += 1
            outcome = self._post(self._webhook_url, body)
            if outcome.delivered:
                logger.info(
                    "Slack: mensagem entregue (status %s, %d tentativa(s))", outcome.status, attempt
                )
                return Delivery(True, None, outcome.status, attempt)
            if not outcome.retryable or attempt == self.max_attempts:
                break
            wait = outcome.retry_after if outcome.retry_after is not None else self.backoff(attempt)
            logger.warning(
                "Slack: tentativa %d/%d falhou (%s); nova tentativa em %.1f s",
                attempt,
                self.max_attempts,
                outcome.reason,
                wait,
            )
            self._sleep(wait)

        reason = outcome.reason if attempt == 1 else f"{outcome.reason} (após {attempt} tentativas)"
        logger.warning("Slack: mensagem não entregue: %s", reason)
        return Delivery(False, reason, outcome.status, attempt)

    # -- one HTTP request ---------------------------------------------------------------------

    def _post(self, url: str, body: bytes) -> _Attempt:
        request = urllib.request.Request(  # noqa: S310 - scheme checked by send()
            url,
            data=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read()  # Slack answers "ok"; drain it so the connection closes cleanly
                status: int = response.status
        except urllib.error.HTTPError as exc:
            return self._http_error(exc)
        except (OSError, http.client.HTTPException) as exc:
            return self._connection_error(exc)
        except ValueError:
            # Malformed URL; the error message would quote it, so it is not repeated here.
            return _Attempt(False, None, "SLACK_WEBHOOK_URL inválido: nada foi enviado")
        return _Attempt(True, status)

    def _connection_error(self, exc: Exception) -> _Attempt:
        """Timeouts, refused or reset connections, DNS failures, bad status lines: retryable."""
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(cause, TimeoutError):
            return _Attempt(False, None, f"sem resposta do Slack em {self.timeout:g} s", True)
        if isinstance(exc, urllib.error.URLError):
            return _Attempt(False, None, self._redact(f"webhook inacessível: {cause}"), True)
        return _Attempt(False, None, self._redact(f"falha na conexão com o Slack: {exc!r}"), True)

    def _http_error(self, exc: urllib.error.HTTPError) -> _Attempt:
        try:
            text = exc.read(4096).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException, ValueError):
            text = ""
        finally:
            exc.close()
        code = exc.code
        if code == 429:
            return _Attempt(
                False,
                code,
                "Slack limitou a taxa de envio (429)",
                retryable=True,
                retry_after=_retry_after(exc.headers),
            )
        if code >= 500:
            return _Attempt(False, code, f"Slack respondeu {code}", retryable=True)
        detail = f": {text[:ERROR_BODY_CHARS]}" if text else ""
        return _Attempt(False, code, self._redact(f"Slack respondeu {code}{detail}"))

    def _redact(self, message: str) -> str:
        """A safety net: no reason or log line may ever carry the webhook URL."""
        if self._webhook_url:
            message = message.replace(self._webhook_url, "<SLACK_WEBHOOK_URL>")
            path = urlsplit(self._webhook_url).path
            if len(path) >= 8:  # Slack's are long; a short one would mangle the message
                message = message.replace(path, "<SLACK_WEBHOOK_URL>")
        return message


def _retry_after(headers: Message | None) -> float | None:
    """`Retry-After` in seconds (capped); None when absent or not a number of seconds."""
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to the exponential backoff
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_CAP_SECONDS)
