"""The real PEDE files load into the canonical table with the counts and drops we decided."""

from __future__ import annotations

from pathlib import Path

import pytest

from passos_magicos.data.dataset import Dataset, load_dataset

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def csv_dataset(real_csv: Path) -> Dataset:
    return load_dataset([str(real_csv)])


@pytest.fixture(scope="module")
def xlsx_dataset(real_xlsx: Path) -> Dataset:
    return load_dataset([str(real_xlsx)])


def test_wide_csv_2020_2022(csv_dataset: Dataset) -> None:
    dataset = csv_dataset
    report = dataset.report
    # 728 / 686 / 862 students with INDE; 2020 loses the junk row and the 24 phase-8 students.
    assert report.rows_by_year == {2020: 703, 2021: 686, 2022: 862}
    assert dict(report.dropped) == {("codigos_invalidos", 2020): 1, ("fase_sem_pv", 2020): 24}
    # The two unlabelled students of 2020 and of 2021 have IPV 0: not assessed, no label.
    assert report.pv_by_year[2020] == {"sim": 94, "nao": 607, "sem_rotulo": 2, "derivado": 0}
    assert report.pv_by_year[2021] == {"sim": 108, "nao": 576, "sem_rotulo": 2, "derivado": 0}
    assert report.pv_by_year[2022] == {"sim": 113, "nao": 749, "sem_rotulo": 0, "derivado": 0}
    table = dataset.table
    assert "ALUNO-1259" not in set(table.loc[table["ano"] == 2020, "aluno_id"])
    assert table["fase"].between(0, 7).all()
    for column in ("inde", "iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian"):
        assert table[column].dropna().between(0, 10).all(), column
    assert set(table["pedra"].dropna()) == {"Quartzo", "Ágata", "Ametista", "Topázio"}


def test_same_year_pv_is_a_threshold_on_ipv(csv_dataset: Dataset) -> None:
    """Why same-year IPV can never be a feature: it is the label up to one tie."""
    table = csv_dataset.table
    disagreements = {}
    for year, threshold in {2020: 8.667, 2021: 9.0, 2022: 8.375}.items():
        rows = table[(table["ano"] == year) & table["pv"].notna()]
        predicted = rows["ipv"] >= threshold - 1e-3
        disagreements[year] = int((predicted != rows["pv"].astype(bool)).sum())
    # 2021 is rounded to one decimal: one student at exactly IPV 9.0 is "Não".
    assert disagreements == {2020: 0, 2021: 1, 2022: 0}


def test_workbook_2022_2024(xlsx_dataset: Dataset) -> None:
    dataset = xlsx_dataset
    report = dataset.report
    assert report.rows_by_year == {2022: 860, 2023: 938, 2024: 1054}
    assert dict(report.dropped) == {
        ("fase_sem_pv", 2023): 63,
        ("sem_avaliacao", 2023): 13,
        ("fase_sem_pv", 2024): 102,  # phase 8 and the phase-9 `INCLUIR` placeholders
    }
    assert report.pv_by_year[2022] == {"sim": 113, "nao": 747, "sem_rotulo": 0, "derivado": 0}
    # Atingiu PV is empty after 2022: every label of 2023 and 2024 is derived by the IPV rule.
    assert report.pv_by_year[2023] == {"sim": 133, "nao": 805, "sem_rotulo": 0, "derivado": 938}
    assert report.pv_by_year[2024] == {"sim": 152, "nao": 902, "sem_rotulo": 0, "derivado": 1054}
    table = dataset.table
    assert set(table["genero"].dropna()) == {"Feminino", "Masculino"}
    assert table.loc[table["ano"] == 2023, "idade"].between(5, 30).all()  # dates recovered
    assert table.loc[table["ano"] == 2022, "ipp"].notna().all()  # recomputed from INDE


def test_sheet_csv_exports_equal_the_workbook(real_data_dir: Path, xlsx_dataset: Dataset) -> None:
    exports = [str(real_data_dir / f"PEDE{y}.csv") for y in (2022, 2023, 2024)]
    from_csv = load_dataset(exports).table.drop(columns="origem")
    from_xlsx = xlsx_dataset.table.drop(columns="origem")
    assert from_csv.equals(from_xlsx)


def test_both_files_link_students_across_the_two_numberings(
    real_csv: Path, real_xlsx: Path, csv_dataset: Dataset, xlsx_dataset: Dataset
) -> None:
    csv_only = csv_dataset.table
    both = load_dataset([str(real_csv), str(real_xlsx)])
    assert both.report.linked_students == 860
    table = both.table
    assert table.duplicated(["aluno_id", "ano"]).sum() == 0
    # CSV ALUNO-2 is workbook RA-747: its 2022 record moved to the RA id.
    assert not ((table["aluno_id"] == "ALUNO-2") & (table["ano"] == 2022)).any()
    linked = table[(table["ano"] == 2022) & table["aluno_id"].str.startswith("RA-")]
    assert len(linked) == 860
    # Linked students keep their 2020-2021 history, now under the RA id.
    assert (table["aluno_id"].str.startswith("RA-") & (table["ano"] == 2021)).sum() > 400
    # The workbook has no IPP in 2022: the one recomputed from INDE agrees with the CSV's.
    xlsx_only = xlsx_dataset.table
    pairs = csv_only[csv_only["ano"] == 2022].merge(
        xlsx_only[xlsx_only["ano"] == 2022], on="ranking_geral", suffixes=("_csv", "_xlsx")
    )
    difference = (pairs["ipp_csv"] - pairs["ipp_xlsx"]).abs().astype(float)
    assert len(pairs) == 860
    # The workbook rounds INDE to 3 decimals and the indicators to 1: IPP is off by ≤ 0.25.
    assert difference.median() < 0.1
    assert difference.max() <= 0.25
