"""Slack incoming-webhook sender. Without a webhook it says so and delivers nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    reason: str | None = None  # why it was not delivered (pt-BR)
    status: int | None = None


class SlackSender:
    def __init__(self, webhook_url: str | None, timeout: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self.timeout = timeout

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url)

    def send(self, text: str, blocks: list[dict[str, Any]] | None = None) -> Delivery:
        if not self.webhook_url:
            return Delivery(False, "SLACK_WEBHOOK_URL não configurado: nada foi enviado")
        payload: dict[str, Any] = {"text": text}
        if blocks:
            payload["blocks"] = blocks
        request = urllib.request.Request(  # noqa: S310 - the URL is the configured webhook
            self.webhook_url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return Delivery(True, None, response.status)
        except urllib.error.HTTPError as exc:
            return Delivery(False, f"Slack respondeu {exc.code}", exc.code)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Delivery(False, f"webhook inacessível: {reason}")
