"""The follow-up schema under Alembic on SQLite: revisions form one chain ending at HEAD, an
upgrade from the previous revision keeps every record, and two processes migrating at once
(two API workers starting) both succeed with the schema migrated once. The same on PostgreSQL:
tests/integration/test_followups_postgres.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from passos_magicos.cli import app
from passos_magicos.database import make_engine
from passos_magicos.followups.store import (
    HEAD,
    MIGRATIONS_DIR,
)
from passos_magicos.settings import get_settings
from tests.followups.helpers import (
    assert_upgrade_kept_every_record,
    migrate_in_two_processes,
    version_rows,
)


def test_revisions_are_one_chain_ending_at_head() -> None:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [HEAD]
    chain = [r.revision for r in script.walk_revisions()]
    assert chain == ["0002", "0001"]


def test_upgrade_from_the_previous_revision_keeps_every_record(tmp_path: Path) -> None:
    assert_upgrade_kept_every_record(f"sqlite:///{tmp_path / 'antigo.db'}")


def test_two_processes_migrating_at_once_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'corrida.db'}"
    results = migrate_in_two_processes(url)
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == HEAD
    assert version_rows(url) == [HEAD]
    engine = make_engine(url)
    assert sa.inspect(engine).has_table("acompanhamentos")
    engine.dispose()


def test_cli_migrates_and_never_downgrades(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FOLLOWUPS_STORE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    first = runner.invoke(app, ["followups", "migrate", "--revision", "0001"])
    assert first.exit_code == 0 and "revisão — → 0001" in first.output, first.output
    second = runner.invoke(app, ["followups", "migrate"])
    assert second.exit_code == 0 and f"0001 → {HEAD}" in second.output
    down = runner.invoke(app, ["followups", "migrate", "--revision", "0001"])
    assert down.exit_code == 0 and f"{HEAD} → {HEAD}" in down.output, down.output
    unknown = runner.invoke(app, ["followups", "migrate", "--revision", "9999"])
    assert unknown.exit_code == 2 and "migração recusada" in unknown.output
    get_settings.cache_clear()
