"""The synthetic PEDE generator: files the readers parse, the real quirks, determinism, the
calibration against the real data and the signal a model can learn from it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from passos_magicos.data.dataset import Dataset, build_dataset, load_dataset
from passos_magicos.data.schema import INDE_WEIGHTS, INDICATORS, MAX_FASE_PV
from passos_magicos.data.storage import SourceFile
from passos_magicos.data.synth import render_synthetic
from passos_magicos.features import build_transitions
from passos_magicos.training.backtest import backtest_year

# Facts of the real files (PRODUCT.md): PV thresholds and per-file row counts for 1,349 students.
PV_THRESHOLD = {2020: 8.667, 2021: 9.0, 2022: 8.375}
REAL_STUDENTS = 1349
REAL_ROWS = {2020: 703, 2021: 686, 2022: 862, 2023: 938, 2024: 1054}  # usable rows per year
REAL_SHEET_ROWS = {2022: 860, 2023: 1014, 2024: 1156}
STUDENTS = 1400
WORKBOOK_STUDENTS = 700  # reading a workbook is slow; half the population keeps tests quick
COUNT_TOLERANCE = 0.05

REAL_CSV = "PEDE_PASSOS_DATASET_FIAP.csv"
REAL_XLSX = "BASE DE DADOS PEDE 2024 - DATATHON.xlsx"


def source(name: str, content: bytes) -> SourceFile:
    return SourceFile(uri=f"memory://{name}", name=name, content=content)


@pytest.fixture(scope="module")
def csv_bytes() -> bytes:
    return render_synthetic(students=STUDENTS, seed=42)


@pytest.fixture(scope="module")
def xlsx_bytes() -> bytes:
    return render_synthetic(students=WORKBOOK_STUDENTS, seed=42, fmt="xlsx")


@pytest.fixture(scope="module")
def csv_dataset(csv_bytes: bytes) -> Dataset:
    return build_dataset([source("sintetico.csv", csv_bytes)])


@pytest.fixture(scope="module")
def small_csv_dataset() -> Dataset:
    content = render_synthetic(students=WORKBOOK_STUDENTS, seed=42)
    return build_dataset([source("sintetico.csv", content)])


@pytest.fixture(scope="module")
def both_dataset(xlsx_bytes: bytes) -> Dataset:
    """CSV and workbook of the same population (same students and seed)."""
    content = render_synthetic(students=WORKBOOK_STUDENTS, seed=42)
    return build_dataset([source("sintetico.csv", content), source("sintetico.xlsx", xlsx_bytes)])


def header(content: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(content.decode("utf-8")), delimiter=";"))


def sheets(content: bytes) -> dict[str, pd.DataFrame]:
    return pd.read_excel(io.BytesIO(content), sheet_name=None, dtype=str)


def within(actual: float, real: float, students: int, tolerance: float = COUNT_TOLERANCE) -> bool:
    """A synthetic count against the real one scaled to the synthetic population."""
    expected = real * students / REAL_STUDENTS
    return abs(actual - expected) <= tolerance * expected


# ---------------------------------------------------------------------------------------------
# Determinism and arguments


def test_same_seed_same_csv_bytes_and_another_seed_differs() -> None:
    first = render_synthetic(students=200, seed=7)
    assert render_synthetic(students=200, seed=7) == first
    assert render_synthetic(students=200, seed=8) != first


def test_same_seed_same_workbook_and_another_seed_differs() -> None:
    first = render_synthetic(students=200, seed=7, fmt="xlsx")
    again = render_synthetic(students=200, seed=7, fmt="xlsx")
    assert again == first  # fixed zip entry times and document timestamps
    parsed, parsed_again = sheets(first), sheets(again)
    assert list(parsed) == ["PEDE2022", "PEDE2023", "PEDE2024"]
    for name, frame in parsed.items():
        pd.testing.assert_frame_equal(frame, parsed_again[name])
    other = sheets(render_synthetic(students=200, seed=8, fmt="xlsx"))
    assert not other["PEDE2022"].equals(parsed["PEDE2022"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fmt": "json"},
        {"years": [2019, 2020]},
        {"fmt": "xlsx", "years": [2021]},
        {"students": 10},
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render_synthetic(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The formats the loader reads


def test_csv_loads_with_the_real_counts_and_drop_reasons(
    csv_bytes: bytes, csv_dataset: Dataset
) -> None:
    assert len(header(csv_bytes)) == 69
    report = csv_dataset.report
    for year in (2020, 2021, 2022):
        assert within(report.rows_by_year[year], REAL_ROWS[year], STUDENTS), year
    assert report.dropped[("codigos_invalidos", 2020)] == 1  # the junk row (D108, D9891/2A...)
    assert report.dropped[("fase_sem_pv", 2020)] >= 20  # phase 8, IPV 0, PV empty
    students = {row[1] for row in csv.reader(io.StringIO(csv_bytes.decode()), delimiter=";")}
    assert within(len(students) - 1, REAL_STUDENTS, STUDENTS)  # distinct students, 2020-2022


def test_workbook_loads_with_the_real_counts_and_drop_reasons(both_dataset: Dataset) -> None:
    report = both_dataset.report
    sheet_rows = {int(f.kind[5:9]): f.rows for f in report.files if f.kind.endswith("-sheet")}
    for year, rows in REAL_SHEET_ROWS.items():
        assert within(sheet_rows[year], rows, WORKBOOK_STUDENTS), year
    for year in (2023, 2024):
        assert within(report.rows_by_year[year], REAL_ROWS[year], WORKBOOK_STUDENTS), year
        assert report.dropped[("fase_sem_pv", year)] >= 25  # phase 8 and `INCLUIR` rows
    assert report.dropped[("sem_avaliacao", 2023)] >= 3
    # Like the real workbook, no PV after 2022: the loader derives every one by the IPV rule.
    assert report.pv_by_year[2023]["derivado"] == report.rows_by_year[2023]
    assert report.pv_by_year[2024]["sem_rotulo"] == 0
    rates = {y: report.pv_by_year[y]["sim"] / report.rows_by_year[y] for y in (2023, 2024)}
    assert all(0.10 <= rate <= 0.19 for rate in rates.values()), rates  # real: 14.2 / 14.4 %
    assert any("sem coluna IPP" in note for note in report.notes)


def test_csv_and_workbook_of_one_seed_link_through_the_2022_ranking(
    both_dataset: Dataset, small_csv_dataset: Dataset
) -> None:
    report = both_dataset.report
    csv_2022 = small_csv_dataset.report.rows_by_year[2022]
    sheet_2022 = next(f.rows for f in report.files if f.kind == "pede-2022-sheet")
    assert report.linked_students == sheet_2022  # every workbook student of 2022
    assert csv_2022 - 5 <= report.linked_students < csv_2022  # a couple only in the CSV
    table = both_dataset.table
    ids_2022 = set(table.loc[table["ano"] == 2022, "aluno_id"])
    history = table[(table["ano"] == 2021) & table["aluno_id"].isin(ids_2022)]
    assert history["aluno_id"].str.startswith("RA-").mean() > 0.95  # CSV history moved to RA ids


def test_years_limit_the_csv_to_one_labelled_transition() -> None:
    content = render_synthetic(students=STUDENTS, seed=42, years=[2021, 2022])
    columns = header(content)
    assert not any(c.endswith("_2020") for c in columns)
    assert any(c.endswith("_2021") for c in columns)
    assert any(c.endswith("_2022") for c in columns)
    dataset = build_dataset([source("sintetico-2021-2022.csv", content)])
    assert dataset.years == [2021, 2022]
    assert build_transitions(dataset.table).years == [2022]


# ---------------------------------------------------------------------------------------------
# Domain rules


def test_pv_is_the_yearly_ipv_threshold(csv_dataset: Dataset) -> None:
    table = csv_dataset.table
    for year, threshold in PV_THRESHOLD.items():
        rows = table[(table["ano"] == year) & table["pv"].notna()]
        pv = rows["pv"].astype(bool).to_numpy()
        assert (pv == (rows["ipv"].astype(float).to_numpy() >= threshold)).all(), year
        assert 0.10 <= pv.mean() <= 0.19, year


def test_inde_formula_holds_for_phases_0_to_7(both_dataset: Dataset) -> None:
    table = both_dataset.table
    rows = table[(table["fase"] <= MAX_FASE_PV) & table["pedra"].notna()]
    formula = sum(w * rows[k].astype(float) for k, w in INDE_WEIGHTS.items())
    gap = (rows["inde"].astype(float) - formula).abs()
    # 2021 and 2023 round the indicators after computing INDE (as the real files do).
    tolerance = rows["ano"].map({2021: 0.05, 2023: 0.05}).fillna(1e-3)
    assert (gap <= tolerance).all()


def test_ages_and_phases_move_together(both_dataset: Dataset) -> None:
    table = both_dataset.table.dropna(subset=["idade", "fase"])
    gap = (table["idade"] - table["fase"]).astype(float)
    assert gap.between(6, 15).all()
    assert 9 <= gap.median() <= 11
    pairs = table.merge(table.assign(ano=table["ano"] - 1), on=["aluno_id", "ano"])
    step = (pairs["fase_y"] - pairs["fase_x"]).astype(int)
    assert step.isin([0, 1]).mean() > 0.95  # most advance one phase or stay


# ---------------------------------------------------------------------------------------------
# The quirks, written on purpose


def test_csv_quirks(csv_bytes: bytes) -> None:
    text = csv_bytes.decode("utf-8")
    frame = pd.read_csv(io.StringIO(text), sep=";", dtype=str)
    junk = frame[frame["IDADE_ALUNO_2020"] == "D108"]
    assert junk["PEDRA_2020"].tolist() == ["D9891/2A"]
    assert junk["INSTITUICAO_ENSINO_ALUNO_2020"].tolist() == ["V202"]
    for column in ("INDE_2021", "PEDRA_2021", "PONTO_VIRADA_2021"):
        assert (frame[column] == "#NULO!").sum() >= 1
    iaa = pd.concat([frame["IAA_2020"], frame["IAA_2022"]]).dropna()
    assert iaa.str.fullmatch(r"\d\.\d*0002000+1").any()  # 8.500020000000001
    assert iaa.isin(["10.00002", "10.000020000000001"]).any()
    assert frame["FASE_2021"].dropna().str.fullmatch(r"\d\.0").all()
    assert frame["FASE_2022"].dropna().str.fullmatch(r"\d\.0").all()
    assert frame["FASE_TURMA_2020"].dropna().str.fullmatch(r"[0-8][A-Z]|D207").all()
    indicators_2021 = frame[[f"{k.upper()}_2021" for k in INDICATORS]].stack()
    assert indicators_2021.str.fullmatch(r"\d+\.\d").all()  # one decimal
    fase8 = frame[frame["FASE_TURMA_2020"].str.startswith("8", na=False)]
    assert len(fase8) >= 20
    assert (fase8["IPV_2020"] == "0").all() and fase8["PONTO_VIRADA_2020"].isna().all()
    assert frame["DESTAQUE_IEG_2022"].dropna().str.startswith(("Destaque:", "Melhorar:")).all()
    assert re.search(r"ALUNO-\d+", text) and not re.search(r"RA-\d", text)


def test_workbook_quirks(xlsx_bytes: bytes) -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_bytes), read_only=True)
    assert workbook.sheetnames == ["PEDE2022", "PEDE2023", "PEDE2024"]
    rows = {ws.title: list(ws.iter_rows(values_only=True)) for ws in workbook.worksheets}
    heads = {name: list(sheet[0]) for name, sheet in rows.items()}
    assert "IPP" not in heads["PEDE2022"] and "IPP" in heads["PEDE2023"]
    assert heads["PEDE2023"].count("Destaque IPV") == 2
    assert heads["PEDE2024"].count("Ativo/ Inativo") == 2

    def column(sheet: str, name: str) -> list[object]:
        index = heads[sheet].index(name)
        return [row[index] for row in rows[sheet][1:]]

    assert set(column("PEDE2022", "Atingiu PV")) == {"Sim", "Não"}
    assert set(column("PEDE2023", "Atingiu PV")) == {None} == set(column("PEDE2024", "Atingiu PV"))
    assert set(column("PEDE2022", "Gênero")) == {"Menina", "Menino"}
    assert set(column("PEDE2024", "Gênero")) == {"Feminino", "Masculino"}
    assert set(column("PEDE2022", "Fase")) == {str(f) for f in range(8)}
    fases_2023 = set(column("PEDE2023", "Fase"))
    assert "ALFA" in fases_2023 and "FASE 3" in fases_2023 and "FASE 8" in fases_2023
    fases_2024 = column("PEDE2024", "Fase")
    assert "ALFA" in fases_2024 and any(re.fullmatch(r"\d[A-Z]", str(f)) for f in fases_2024)
    inde_2024 = column("PEDE2024", "INDE 2024")
    placeholders = [f for f, i in zip(fases_2024, inde_2024, strict=True) if i == "INCLUIR"]
    assert placeholders and set(placeholders) == {9}
    assert "Agata" in column("PEDE2023", "Pedra 2023") and "Ágata" in column("PEDE2022", "Pedra 22")
    errors = set(column("PEDE2023", "INDE 2023")) | set(column("PEDE2024", "INDE 2024"))
    assert {"#N/A", "#DIV/0!"} <= errors
    ages_2023 = column("PEDE2023", "Idade")
    assert any(isinstance(a, dt.datetime) and a.year == 1900 for a in ages_2023)
    ids = set(column("PEDE2022", "RA")) & set(column("PEDE2023", "RA"))
    assert len(ids) > 0.5 * len(rows["PEDE2022"])  # RA-n stable across sheets
    names = column("PEDE2023", "Nome Anonimizado")
    assert all(re.fullmatch(r"Aluno-\d+", str(n)) for n in names)


# ---------------------------------------------------------------------------------------------
# Signal: what the quality gate sees on the synthetic data


def test_out_of_time_signal_passes_the_quality_gate(csv_dataset: Dataset) -> None:
    transitions = build_transitions(csv_dataset.table)
    year = backtest_year(transitions, 2022, "logistic_regression", 5, 42, replicates=200)
    assert 0.75 <= year.figures()["roc_auc"].value <= 0.92  # real data: 0.824
    assert year.train_years == [2021]


def test_workbook_can_carry_the_rule_labels_of_2023_and_2024() -> None:
    written = render_synthetic(students=WORKBOOK_STUDENTS, seed=5, fmt="xlsx", later_pv="regra")
    labels = sheets(written)
    assert set(labels["PEDE2024"]["Atingiu PV"].dropna()) == {"Sim", "Não"}
    dataset = build_dataset([source("com-pv.xlsx", written)])
    report = dataset.report
    assert report.pv_by_year[2024]["derivado"] == 0  # written labels count as the file's own
    rules = {rule.ano: rule for rule in report.pv_rule}
    for year in (2023, 2024):  # and they are the rule's: the loader's recomputation agrees
        assert rules[year].discordam <= 2, rules[year]
        assert rules[year].concordam >= 0.99 * report.rows_by_year[year]


# ---------------------------------------------------------------------------------------------
# Calibration against the real files (PEDE_DATA_DIR)


def real_data_dir() -> Path:
    value = os.environ.get("PEDE_DATA_DIR")
    if not value:
        pytest.skip("PEDE_DATA_DIR não definido: pasta com os arquivos reais da PEDE")
    folder = Path(value)
    missing = [n for n in (REAL_CSV, REAL_XLSX) if not (folder / n).is_file()]
    if missing:
        pytest.skip(f"arquivos reais ausentes em {folder}: {', '.join(missing)}")
    return folder


def ipv_to_next_pv_auc(table: pd.DataFrame) -> dict[int, float]:
    frame = build_transitions(table).frame
    aucs = {}
    for year in sorted(frame["ano_alvo"].unique()):
        rows = frame[frame["ano_alvo"] == year]
        aucs[int(year)] = float(roc_auc_score(rows["pv_proximo"], rows["ipv"]))
    return aucs


@pytest.mark.real_data
def test_synthetic_matches_the_real_statistics(csv_dataset: Dataset) -> None:
    """Per-year indicator means and standard deviations, PV rates and the IPV_t → PV_t+1
    ROC-AUC of the default synthetic CSV against the real CSV (the labelled years)."""
    folder = real_data_dir()
    real = load_dataset([str(folder / REAL_CSV)]).table
    synthetic = csv_dataset.table
    for year in PV_THRESHOLD:
        real_year = real[real["ano"] == year]
        synthetic_year = synthetic[synthetic["ano"] == year]
        for name in INDICATORS:
            r = real_year[name].astype(float)
            s = synthetic_year[name].astype(float)
            assert abs(s.mean() - r.mean()) <= 0.15, (year, name, "média")
            assert abs(s.std() - r.std()) <= 0.25, (year, name, "desvio padrão")
        real_rate = real_year["pv"].dropna().astype(bool).mean()
        synthetic_rate = synthetic_year["pv"].dropna().astype(bool).mean()
        assert abs(synthetic_rate - real_rate) <= 0.02, (year, "taxa de PV")
    real_auc, synthetic_auc = ipv_to_next_pv_auc(real), ipv_to_next_pv_auc(synthetic)
    assert synthetic_auc.keys() == real_auc.keys() == {2021, 2022}
    for year, auc in real_auc.items():
        assert abs(synthetic_auc[year] - auc) <= 0.07, (year, "ROC-AUC IPV_t → PV_t+1")


@pytest.mark.real_data
def test_synthetic_files_have_the_real_column_names(csv_bytes: bytes, xlsx_bytes: bytes) -> None:
    folder = real_data_dir()
    assert header(csv_bytes) == header((folder / REAL_CSV).read_bytes())
    real_sheets = pd.read_excel(folder / REAL_XLSX, sheet_name=None, nrows=1)
    synthetic_sheets = pd.read_excel(io.BytesIO(xlsx_bytes), sheet_name=None, nrows=1)
    assert list(synthetic_sheets) == list(real_sheets)
    for name, frame in real_sheets.items():
        assert list(synthetic_sheets[name].columns) == list(frame.columns), name


def test_indicator_values_stay_on_the_scale(both_dataset: Dataset) -> None:
    values = both_dataset.table[list(INDICATORS)].astype(float)
    assert ((values >= 0) & (values <= 10) | values.isna()).all().all()
    assert set(np.unique(both_dataset.table["ian"].dropna().astype(float))) <= {2.5, 5.0, 10.0}
