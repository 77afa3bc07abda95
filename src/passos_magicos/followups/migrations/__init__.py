"""Alembic migrations of the follow-up tables (version table `acompanhamentos_alembic_version`,
so they share a database with MLflow's or anyone else's Alembic history without clashing)."""
