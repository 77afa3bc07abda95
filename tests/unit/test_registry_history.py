"""Promotion history replay: promote pushes, rollback pops back; which metrics are tagged."""

from __future__ import annotations

from passos_magicos.registry import is_summary_metric, production_lineage


def ev(acao: str, versao: str, alias: str = "production") -> dict[str, str]:
    return {"acao": acao, "versao": versao, "alias": alias}


def test_promotions_stack_up_and_rollback_goes_back_one() -> None:
    events = [ev("promote", "1"), ev("promote", "2"), ev("promote", "3"), ev("rollback", "2")]
    assert production_lineage(events) == ["1", "2"]


def test_staging_moves_do_not_count() -> None:
    assert production_lineage([ev("promote", "1"), ev("promote", "2", "staging")]) == ["1"]


def test_rollback_to_a_version_outside_the_stack_starts_over() -> None:
    assert production_lineage([ev("promote", "4"), ev("rollback", "1")]) == ["1"]


def test_headline_and_baseline_metrics_are_tagged_on_versions() -> None:
    tagged = [
        "oot_roc_auc",
        "cv_roc_auc",
        "oot_pr_auc",
        "oot_brier",
        "oot_baseline_ipv_t_roc_auc",
        "cv_baseline_logistica_simples_pr_auc",
        "oot_baseline_pv_t_brier",
    ]
    not_tagged = [
        "oot_f1",
        "oot_baseline_ipv_t_recall_top15",
        "baseline_ipv_t_roc_auc",
        "rows_2020",
    ]
    assert all(is_summary_metric(name) for name in tagged)
    assert not any(is_summary_metric(name) for name in not_tagged)
