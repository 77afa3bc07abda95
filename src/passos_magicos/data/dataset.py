"""Load one or more PEDE files into the canonical table, with a validation report.

read → parse per format → drop unusable rows (counted per reason and year) → link the
2020-2022 CSV ids to the 2022-2024 workbook ids → merge duplicates → complete static attributes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from passos_magicos.data.labels import RuleYear, apply_pv_rule
from passos_magicos.data.readers import ParsedFile, parse_file
from passos_magicos.data.schema import (
    INDICATORS,
    MAX_FASE_PV,
    PV_DERIVADO,
    DataFormatError,
    conform,
    empty_canonical,
)
from passos_magicos.data.storage import SourceFile, combined_digest, read_source

# Drop reasons (pt-BR, shown to users and logged to MLflow as drop.<key>).
DROP_REASONS: Final = {
    "sem_id": "sem identificador do aluno",
    "codigos_invalidos": "códigos não numéricos em campos numéricos (linha corrompida)",
    "fora_escala": "indicador fora da escala 0-10",
    "fase_sem_pv": "fase 8+ (universitários/formados): sem avaliação de Ponto de Virada",
    "sem_avaliacao": "sem avaliação no ano (INDE e IPV ausentes)",
    "repetido": "aluno repetido no mesmo ano e arquivo",
}

INDE_LINK_TOLERANCE: Final = 0.01


@dataclass(frozen=True)
class FileSummary:
    name: str
    uri: str
    kind: str
    sha256: str
    rows: int


@dataclass
class LoadReport:
    files: list[FileSummary] = field(default_factory=list)
    dropped: Counter[tuple[str, int]] = field(default_factory=Counter)
    linked_students: int = 0
    # CSV id → workbook id of the linked students (ALUNO-n → RA-m): predictions stored under
    # the CSV id still find the student's later cycles.
    linked_ids: dict[str, str] = field(default_factory=dict)
    merged_records: int = 0
    notes: list[str] = field(default_factory=list)
    rows_by_year: dict[int, int] = field(default_factory=dict)
    pv_by_year: dict[int, dict[str, int]] = field(default_factory=dict)
    pv_rule: list[RuleYear] = field(default_factory=list)
    derived_labels: bool = True

    def dropped_by_reason(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (reason, _year), count in self.dropped.items():
            totals[reason] += count
        return dict(totals)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def describe(self) -> list[str]:
        """The report as lines for people (pt-BR)."""
        lines = [f"arquivo {f.name}: {f.kind}, {f.rows} registros lidos" for f in self.files]
        for year, count in sorted(self.rows_by_year.items()):
            pv = self.pv_by_year[year]
            origin = f" (derivados pela regra do IPV: {pv['derivado']})" if pv["derivado"] else ""
            lines.append(
                f"ano {year}: {count} alunos utilizáveis; PV sim {pv['sim']}, não {pv['nao']}, "
                f"sem rótulo {pv['sem_rotulo']}{origin}"
            )
        lines += [_describe_rule(rule) for rule in self.pv_rule if rule.limiar is not None]
        for (reason, year), count in sorted(self.dropped.items(), key=lambda kv: kv[0][::-1]):
            lines.append(f"descartados {year}: {count} — {DROP_REASONS[reason]}")
        lines += [f"nota: {note}" for note in self.notes]
        return lines


@dataclass
class Dataset:
    """The canonical student-year table and where it came from."""

    table: pd.DataFrame
    report: LoadReport
    digest: str

    @property
    def years(self) -> list[int]:
        return sorted(int(y) for y in self.table["ano"].unique())

    @property
    def latest_year(self) -> int:
        return max(self.years)

    def validation_report(self) -> dict[str, Any]:
        """The load report as JSON-able data (`data validate --json`, logged to MLflow)."""
        report = self.report
        return {
            "dataset_sha256": self.digest,
            "arquivos": [asdict(f) for f in report.files],
            "linhas_por_ano": report.rows_by_year,
            "pv_por_ano": report.pv_by_year,
            "regra_pv": {
                "descricao": "PV = IPV ≥ média + 1 DP (ddof=1) do IPV dos avaliados no ciclo",
                "rotulos_derivados": report.derived_labels,
                "por_ano": [rule.as_dict() for rule in report.pv_rule],
            },
            "descartes": [
                {"motivo": reason, "descricao": DROP_REASONS[reason], "ano": year, "linhas": n}
                for (reason, year), n in sorted(report.dropped.items())
            ],
            "alunos_vinculados_csv_xlsx": report.linked_students,
            "registros_unificados": report.merged_records,
            "notas": report.notes,
        }


def _describe_rule(rule: RuleYear) -> str:
    line = f"regra do PV {rule.ano}: limiar de IPV {rule.limiar:.3f} ({rule.avaliados} avaliados"
    if rule.oficiais:
        line += f"; reproduz {rule.concordam} de {rule.concordam + rule.discordam} rótulos oficiais"
    return line + ")"


def load_dataset(uris: Sequence[str], derive_labels: bool = True) -> Dataset:
    """Read and validate the files; `derive_labels` fills missing PV labels by the IPV rule
    (PV_DERIVED_LABELS), always marked `derivado`."""
    if not uris:
        raise DataFormatError("nenhum arquivo de dados informado")
    files = [read_source(uri) for uri in uris]
    return build_dataset(files, derive_labels)


def build_dataset(files: Sequence[SourceFile], derive_labels: bool = True) -> Dataset:
    report = LoadReport(derived_labels=derive_labels)
    frames: list[pd.DataFrame] = []
    for file in files:
        for parsed in parse_file(file):
            report.files.append(
                FileSummary(parsed.name, file.uri, parsed.kind, file.sha256, len(parsed.rows))
            )
            report.notes.extend(f"{parsed.name}: {note}" for note in parsed.notes)
            frames.append(_drop_unusable(parsed, report))
    table = pd.concat(frames, ignore_index=True) if frames else empty_canonical()
    table = _link_csv_to_workbook(table, report)
    table = _merge_duplicates(table, report)
    table = _complete_static_attributes(table)
    table, report.pv_rule = apply_pv_rule(table, derive_labels)
    table = table.sort_values(["ano", "aluno_id"], kind="stable").reset_index(drop=True)
    if table.empty:
        raise DataFormatError("nenhuma linha utilizável nos arquivos informados")
    _summarise(table, report)
    return Dataset(table=table, report=report, digest=combined_digest(list(files)))


def _drop_unusable(parsed: ParsedFile, report: LoadReport) -> pd.DataFrame:
    rows = parsed.rows.copy()
    indicators = rows[list(INDICATORS)].astype("float64")
    rules: list[tuple[str, pd.Series]] = [
        ("sem_id", rows["aluno_id"].isna()),
        ("codigos_invalidos", rows["_junk"]),
        ("fora_escala", ((indicators < 0) | (indicators > 10)).any(axis=1)),
        ("fase_sem_pv", rows["fase"].fillna(-1) > MAX_FASE_PV),
        ("sem_avaliacao", rows["inde"].isna() & rows["ipv"].isna()),
        ("repetido", rows.duplicated(subset=["aluno_id", "ano"], keep="first")),
    ]
    keep = pd.Series(True, index=rows.index)
    for reason, mask in rules:
        hit = keep & mask.fillna(False).astype(bool)
        for year, count in rows.loc[hit, "ano"].value_counts().items():
            report.dropped[(reason, int(str(year)))] += int(count)
        keep &= ~hit
    return conform(rows[keep])


def _link_csv_to_workbook(table: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """CSV `ALUNO-n` and workbook `RA-m` are the same student when their 2022 overall ranking
    (CG) matches one-to-one and INDE 2022 agrees; the CSV history then moves to the RA id."""
    csv_2022 = table[(table["ano"] == 2022) & table["origem"].str.startswith("csv")]
    xlsx_2022 = table[(table["ano"] == 2022) & table["origem"].str.startswith("xlsx")]
    if csv_2022.empty or xlsx_2022.empty:
        return table
    left = csv_2022[["aluno_id", "ranking_geral", "inde"]].dropna(subset=["ranking_geral"])
    right = xlsx_2022[["aluno_id", "ranking_geral", "inde"]].dropna(subset=["ranking_geral"])
    left = left[~left["ranking_geral"].duplicated(keep=False)]
    right = right[~right["ranking_geral"].duplicated(keep=False)]
    pairs = left.merge(right, on="ranking_geral", suffixes=("_csv", "_xlsx"))
    agree = (pairs["inde_csv"] - pairs["inde_xlsx"]).abs() <= INDE_LINK_TOLERANCE
    pairs = pairs[agree.fillna(False).astype(bool)]
    mapping = dict(zip(pairs["aluno_id_csv"], pairs["aluno_id_xlsx"], strict=True))
    report.linked_students = len(mapping)
    report.linked_ids = {str(k): str(v) for k, v in mapping.items()}
    report.notes.append(
        f"{len(mapping)} de {len(csv_2022)} alunos de 2022 do CSV vinculados ao XLSX pelo ranking "
        "geral (CG) de 2022"
    )
    table = table.copy()
    table["aluno_id"] = table["aluno_id"].replace(mapping)
    return table


def _merge_duplicates(table: pd.DataFrame, report: LoadReport) -> pd.DataFrame:
    """The same student-year from two files (CSV+XLSX 2022, or a sheet given twice): one row,
    CSV values first (full precision), gaps filled from the other file."""
    duplicated = table.duplicated(subset=["aluno_id", "ano"], keep=False)
    if not duplicated.any():
        return table
    dups = table[duplicated].copy()
    dups["_priority"] = (~dups["origem"].str.startswith("csv")).astype(int)
    dups = dups.sort_values("_priority", kind="stable").drop(columns="_priority")
    merged = dups.groupby(["aluno_id", "ano"], sort=False).first().reset_index()
    report.merged_records = int(duplicated.sum() - len(merged))
    merged["origem"] = "merged"
    return conform(pd.concat([table[~duplicated], merged], ignore_index=True))


def _complete_static_attributes(table: pd.DataFrame) -> pd.DataFrame:
    """Attributes that do not change with time (entry year, birth year, gender) are completed
    across the years of the same student; age and years in the programme follow from them."""
    table = table.copy()
    entry_from_years = (table["ano"] - table["anos_pm"]).astype("Int64")
    table["ano_ingresso"] = table["ano_ingresso"].fillna(entry_from_years)
    # The earliest documented entry year wins: the 2024 sheet floors it at 2021.
    table["ano_ingresso"] = table.groupby("aluno_id")["ano_ingresso"].transform("min")
    derived_years = (table["ano"] - table["ano_ingresso"]).astype("Int64")
    table["anos_pm"] = derived_years.where(derived_years >= 0).fillna(table["anos_pm"])
    birth_year = (table["ano"] - table["idade"]).astype("Float64")
    table["_nascimento"] = birth_year
    table["_nascimento"] = table["_nascimento"].fillna(
        table.groupby("aluno_id")["_nascimento"].transform("median")
    )
    table["idade"] = table["idade"].fillna((table["ano"] - table["_nascimento"]).round())
    table["genero"] = table["genero"].fillna(table.groupby("aluno_id")["genero"].transform("first"))
    return conform(table)


def _summarise(table: pd.DataFrame, report: LoadReport) -> None:
    for year, group in table.groupby("ano"):
        key = int(str(year))
        report.rows_by_year[key] = len(group)
        pv = group["pv"]
        report.pv_by_year[key] = {
            "sim": int((pv == True).sum()),  # noqa: E712 - nullable boolean
            "nao": int((pv == False).sum()),  # noqa: E712
            "sem_rotulo": int(pv.isna().sum()),
            "derivado": int((group["pv_origem"] == PV_DERIVADO).sum()),
        }


def resolve_data_uris(
    given: Sequence[str] | None, default_path: str | None, data_dir: Path, students: int, seed: int
) -> list[str]:
    """The files to use: those given, else PEDE_DATA_PATH, else the embedded synthetic data —
    the 2020-2022 CSV and the 2022-2024 workbook of one population (cycles 2020-2024, PV after
    2022 derived by the IPV rule, like the real files), generated once under DATA_DIR,
    deterministic for the seed."""
    if given:
        return list(given)
    if default_path:
        return [part.strip() for part in default_path.split(",") if part.strip()]
    from passos_magicos.data.synth import render_synthetic

    paths = []
    for fmt in ("csv", "xlsx"):
        path = data_dir / "synthetic" / f"pede-sintetico-{students}-seed{seed}.{fmt}"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp")
            partial.write_bytes(render_synthetic(students=students, seed=seed, fmt=fmt))
            partial.replace(path)
        paths.append(str(path))
    return paths
