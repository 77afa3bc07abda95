"""The PV rule (IPV ≥ mean + 1 SD of the cycle's assessed students) against the official labels,
and the labels it derives where the files have none, always marked as derived."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from passos_magicos.data.dataset import Dataset, load_dataset
from passos_magicos.data.labels import apply_pv_rule, assessed_mask, rule_threshold
from passos_magicos.data.schema import PV_DERIVADO, PV_OFICIAL, conform


def _cycle(year: int, ipv: list[float], pv: list[bool | None], fase: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "aluno_id": [f"RA-{year}-{i}" for i in range(len(ipv))],
            "ano": year,
            "fase": fase,
            "ipv": ipv,
            "pv": pd.array(pv, dtype="boolean"),
        }
    )


def test_rule_fills_only_missing_labels_of_assessed_students() -> None:
    ipv = [float(v) for v in range(1, 41)]  # 40 assessed students: threshold mean + 1 SD
    labelled = _cycle(2022, ipv, [False] * 39 + [True])
    unlabelled = _cycle(2023, ipv, [None] * 40)
    not_assessed = _cycle(2023, [0.0, 5.0], [None, None])
    not_assessed.loc[1, "fase"] = 8  # phase 8 has no PV assessment
    table = conform(pd.concat([labelled, unlabelled, not_assessed], ignore_index=True))
    out, rules = apply_pv_rule(table)

    threshold = float(pd.Series(ipv).mean() + pd.Series(ipv).std(ddof=1))
    by_year = {rule.ano: rule for rule in rules}
    assert by_year[2023].limiar == pytest.approx(threshold, abs=1e-4)
    assert by_year[2023].derivados == 40 and by_year[2022].derivados == 0

    official = out[out["ano"] == 2022]
    assert official["pv_origem"].eq(PV_OFICIAL).all()  # the official label wins, even if
    assert official["pv"].sum() == 1  # the rule would flag more students
    assert by_year[2022].discordam == int((pd.Series(ipv) >= threshold).sum()) - 1

    derived = out[(out["ano"] == 2023) & out["ipv"].gt(0) & out["fase"].le(7)]
    assert derived["pv_origem"].eq(PV_DERIVADO).all()
    assert derived["pv"].astype(bool).tolist() == [v >= threshold for v in ipv]
    skipped = out[(out["ano"] == 2023) & ~assessed_mask(out)]
    assert len(skipped) == 2 and skipped["pv"].isna().all() and skipped["pv_origem"].isna().all()


def test_switching_derivation_off_keeps_only_official_labels() -> None:
    table = conform(_cycle(2023, [float(v) for v in range(1, 41)], [None] * 40))
    out, rules = apply_pv_rule(table, derive=False)
    assert out["pv"].isna().all() and out["pv_origem"].isna().all()
    assert rules[0].derivados == 0 and rules[0].limiar is not None


def test_too_few_assessed_students_set_no_threshold() -> None:
    assert rule_threshold(pd.Series([8.0, 9.0, 7.5])) is None


@pytest.fixture(scope="module")
def both_files(real_csv: Path, real_xlsx: Path) -> Dataset:
    return load_dataset([str(real_csv), str(real_xlsx)])


@pytest.mark.real_data
def test_rule_reproduces_the_official_labels_of_2020_to_2022(both_files: Dataset) -> None:
    rules = {rule.ano: rule for rule in both_files.report.pv_rule}
    assert (rules[2020].avaliados, rules[2020].discordam) == (701, 0)
    assert (rules[2022].avaliados, rules[2022].discordam) == (862, 0)
    assert rules[2021].concordam == 673 and rules[2021].discordam == 11
    table = both_files.table
    pool = table[(table["ano"] == 2021) & assessed_mask(table) & table["pv"].notna()]
    by_rule = pool["ipv"].astype(float) >= rules[2021].limiar
    differs = pool[by_rule != pool["pv"].astype(bool)]
    # Every 2021 difference is an IPV published rounded to 9.0 (the rule's value is 9.008).
    assert differs["ipv"].astype(float).eq(9.0).all() and len(differs) == 11
    assert rules[2021].limiar == pytest.approx(9.008, abs=0.001)


@pytest.mark.real_data
def test_2023_and_2024_labels_are_derived_and_marked(both_files: Dataset) -> None:
    rules = {rule.ano: rule for rule in both_files.report.pv_rule}
    assert rules[2023].limiar == pytest.approx(8.97, abs=0.01)
    assert rules[2024].limiar == pytest.approx(8.40, abs=0.01)
    table = both_files.table
    for year, rate in ((2023, 0.142), (2024, 0.144)):
        cycle = table[table["ano"] == year]
        assert cycle["pv_origem"].eq(PV_DERIVADO).all()
        assert cycle["pv"].astype(bool).mean() == pytest.approx(rate, abs=0.001)
    assert table.loc[table["ano"] <= 2022, "pv_origem"].dropna().eq(PV_OFICIAL).all()


@pytest.mark.real_data
def test_derived_labels_can_be_switched_off(real_xlsx: Path) -> None:
    dataset = load_dataset([str(real_xlsx)], derive_labels=False)
    assert dataset.table.loc[dataset.table["ano"] >= 2023, "pv"].isna().all()
    assert dataset.report.pv_by_year[2024]["derivado"] == 0
