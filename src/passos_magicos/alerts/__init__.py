"""Slack alerts for the monitoring job and the API.

- `findings.Finding`: what a check concluded (the monitoring job produces them);
- `policy.AlertPolicy`: dedup, cooldown, reminders and resolutions, then `slack.SlackSender`;
- `messages`: the Block Kit messages; `history.AlertHistory`: the SQL store behind it all.
"""

from passos_magicos.alerts.findings import Finding, FindingState, Severity

__all__ = ["Finding", "FindingState", "Severity"]
