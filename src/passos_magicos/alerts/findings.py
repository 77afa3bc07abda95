"""What a monitoring check concluded, in a form that knows nothing about Slack or storage.

The monitoring job turns each check into one `Finding`; `AlertPolicy.apply` decides from the
findings (and the stored alert state) what, if anything, goes to Slack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

FindingState = Literal["ok", "alerta", "indeterminado"]
Severity = Literal["info", "aviso", "critico"]

KEY_CHARS: Final = 200  # the dedup key column of alert_state
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "aviso", "critico")  # ascending
SEVERITY_LABELS: Final[dict[str, str]] = {"info": "INFO", "aviso": "AVISO", "critico": "CRÍTICO"}


def severity_rank(severity: str) -> int:
    """0 for info, 1 for aviso, 2 for critico (unknown values count as aviso)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 1


@dataclass(frozen=True)
class Finding:
    """The outcome of one check for one subject (e.g. feature drift of one model version).

    - `key`: dedup key, stable across runs, e.g. "drift_features:passos-magicos-ponto-virada:3".
    - `state`: "alerta" raises (or keeps) the alert, "ok" resolves it, "indeterminado" (not
      enough data, no reference profile...) neither raises nor resolves anything.
    - `title` (short) and `summary` (one paragraph) are pt-BR and go to Slack as they are.
    - `facts`: label/value pairs shown side by side, e.g. ("Modelo", "... v3").
    - `details`: one line each, e.g. "iaa: PSI 0,41 · KS D=0,22 (p<0,001) · média 6,1 → 7,3".
    """

    key: str
    state: FindingState
    severity: Severity
    title: str
    summary: str
    facts: tuple[tuple[str, str], ...] = ()
    details: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.key or len(self.key) > KEY_CHARS:
            raise ValueError(f"a chave do achado deve ter de 1 a {KEY_CHARS} caracteres")
        if self.state not in ("ok", "alerta", "indeterminado"):
            raise ValueError(f"estado desconhecido: {self.state!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severidade desconhecida: {self.severity!r}")
