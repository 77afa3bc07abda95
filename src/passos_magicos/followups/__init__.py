"""Acompanhamentos: what the pedagogic team did for a student after a prediction, and what
happened next.

- `store`: the records (SQLAlchemy on FOLLOWUPS_STORE_URL; SQLite by default, PostgreSQL in
  production) and their Alembic migrations (`migrations/`), run under a lock so that several
  API workers or replicas starting together never race;
- `schemas`: the API's request and response bodies (pt-BR descriptions);
- `outcomes`: the descriptive report "from action to outcome" that the realised-performance
  evaluation adds to its record once cycle t+1 arrives.

Follow-ups are never model features: the model would learn the team's own choices (a feedback
loop). Nothing under features, training or feature_store reads them (tests/followups guards it).
"""
