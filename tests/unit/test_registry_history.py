"""Promotion history replay: promote pushes, rollback pops back."""

from __future__ import annotations

from passos_magicos.registry import production_lineage


def ev(acao: str, versao: str, alias: str = "production") -> dict[str, str]:
    return {"acao": acao, "versao": versao, "alias": alias}


def test_promotions_stack_up_and_rollback_goes_back_one() -> None:
    events = [ev("promote", "1"), ev("promote", "2"), ev("promote", "3"), ev("rollback", "2")]
    assert production_lineage(events) == ["1", "2"]


def test_staging_moves_do_not_count() -> None:
    assert production_lineage([ev("promote", "1"), ev("promote", "2", "staging")]) == ["1"]


def test_rollback_to_a_version_outside_the_stack_starts_over() -> None:
    assert production_lineage([ev("promote", "4"), ev("rollback", "1")]) == ["1"]
