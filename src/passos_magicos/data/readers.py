"""Readers per source format → canonical student-year rows (before validation).

Formats:
- wide CSV 2020-2022 (`PEDE_PASSOS_DATASET_FIAP.csv`): `;`, one row per student, `_YYYY` suffixes;
- the 2022-2024 workbook (sheets PEDE2022/PEDE2023/PEDE2024) and its per-sheet CSV exports:
  one row per student per sheet, column names that change from sheet to sheet.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from typing import Final

import pandas as pd

from passos_magicos.data.schema import INDE_WEIGHTS, INDICATORS, DataFormatError
from passos_magicos.data.storage import SourceFile

# Cells that mean "no value": spreadsheet errors, SPSS-style nulls and placeholder rows.
MISSING_TOKENS: Final = frozenset(
    {
        "",
        "#NULO!",
        "#N/A",
        "#DIV/0!",
        "#VALUE!",
        "#REF!",
        "#NAME?",
        "#NUM!",
        "#NULL!",
        "INCLUIR",
        "nan",
        "NaN",
        "None",
    }
)
JUNK_MARK: Final = "__junk__"  # a non-empty cell that should be a number or category but is not

INDICATOR_TOLERANCE: Final = 0.05  # 10.00002 and 10.002 are float artefacts of 10


@dataclass
class ParsedFile:
    """One input file turned into canonical-named rows, plus what the reader noticed."""

    name: str
    kind: str
    rows: pd.DataFrame
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Cell parsers (vectorised over a column of strings)


def _clean(series: pd.Series) -> pd.Series:
    text = series.astype("string").str.strip()
    return text.mask(text.isin(MISSING_TOKENS) | text.isna())


def parse_number(series: pd.Series) -> pd.Series:
    """Numbers as Float64; a present non-numeric cell becomes NaN and is flagged by `junk_mask`."""
    text = _clean(series)
    return pd.to_numeric(text, errors="coerce").astype("Float64")


def junk_mask(series: pd.Series) -> pd.Series:
    text = _clean(series)
    return text.notna() & pd.to_numeric(text, errors="coerce").isna()


def parse_indicator(series: pd.Series) -> pd.Series:
    """0-10 indicator: float artefacts (8.50002, 10.00002) rounded away at 4 decimals, small
    excursions above 10 (10.002) clipped to 10."""
    values = parse_number(series).round(4)
    near_top = ((values > 10) & (values <= 10 + INDICATOR_TOLERANCE)).fillna(False)
    return values.mask(near_top, 10.0)


def parse_pv(series: pd.Series) -> pd.Series:
    text = _clean(series).str.lower()
    return text.map({"sim": True, "não": False, "nao": False}).astype("boolean")


_PEDRA_KEYS: Final = {
    "quartzo": "Quartzo",
    "agata": "Ágata",
    "ágata": "Ágata",
    "ametista": "Ametista",
    "topazio": "Topázio",
    "topázio": "Topázio",
}


def parse_pedra(series: pd.Series) -> pd.Series:
    text = _clean(series).str.lower()
    return text.map(_PEDRA_KEYS).astype("string")


_GENERO_KEYS: Final = {
    "menina": "Feminino",
    "feminino": "Feminino",
    "f": "Feminino",
    "menino": "Masculino",
    "masculino": "Masculino",
    "m": "Masculino",
}


def parse_genero(series: pd.Series) -> pd.Series:
    return _clean(series).str.lower().map(_GENERO_KEYS).astype("string")


def _instituicao(value: str) -> str:
    text = value.lower()
    if "públic" in text or "public" in text:
        return "publica"
    if any(k in text for k in ("fiap", "unisa", "estácio", "estacio", "einstein", "universit")):
        return "universidade"
    if any(k in text for k in ("privad", "decisão", "decisao", "união", "jp ii", "joão paulo")):
        return "privada"
    return "outra"


def parse_instituicao(series: pd.Series) -> pd.Series:
    text = _clean(series)
    return text.map(_instituicao, na_action="ignore").astype("string")


_FASE_RE: Final = re.compile(r"^(?:fase\s*)?(\d{1,2})(?:\.0+)?\s*([a-z]?)$", re.IGNORECASE)


def split_fase_turma(series: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """`ALFA`, `FASE 3`, `3`, `3.0`, `2H` (2020 and 2024 combine phase and class).

    Returns (fase, turma, junk) where junk flags present cells that are none of these.
    """
    text = _clean(series)
    fase = pd.Series(pd.NA, index=series.index, dtype="Int64")
    turma = pd.Series(pd.NA, index=series.index, dtype="string")
    alfa = text.str.upper().str.startswith("ALFA").fillna(False).astype(bool)
    fase[alfa] = 0
    extracted = text.str.extract(_FASE_RE)
    matched = extracted[0].notna() & ~alfa
    fase[matched] = extracted.loc[matched, 0].astype(int)
    letter = extracted[1].str.upper()
    has_letter = matched & letter.notna() & (letter != "")
    turma[has_letter] = letter[has_letter]
    junk = text.notna() & ~alfa & ~matched
    return fase, turma, junk


_TURMA_RE: Final = re.compile(r"^(?:ALFA\s+|\d{1,2})?([A-Z])\b", re.IGNORECASE)


def parse_turma(series: pd.Series) -> pd.Series:
    """`K`, `2K` (2023 repeats the phase), `ALFA A - G0/G1` → the class letter."""
    text = _clean(series)
    return text.str.extract(_TURMA_RE)[0].str.upper().astype("string")


def parse_age(series: pd.Series) -> pd.Series:
    """Ages are integers, except in 2023 where Excel stored some as dates (1900-01-11 = 11)."""
    text = _clean(series)
    numeric = pd.to_numeric(text, errors="coerce")
    as_date = pd.to_datetime(text.where(numeric.isna()), errors="coerce", format="mixed")
    serial = (as_date - pd.Timestamp("1899-12-31")).dt.days
    excel_serial = serial.where((as_date.dt.year == 1900) & (serial > 0))
    return numeric.fillna(excel_serial).astype("Float64")


_IDEAL_RE: Final = re.compile(r"(?:fase|n[íi]vel)\s*(\d)", re.IGNORECASE)


def parse_fase_ideal(series: pd.Series) -> pd.Series:
    text = _clean(series)
    ideal = text.str.extract(_IDEAL_RE)[0].astype("Float64").astype("Int64")
    alfa = text.str.upper().str.startswith("ALFA").fillna(False).astype(bool)
    ideal[alfa] = 0
    return ideal


# ---------------------------------------------------------------------------------------------
# File sniffing


def decode_text(file: SourceFile) -> tuple[str, list[str]]:
    notes: list[str] = []
    try:
        text = file.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = file.content.decode("latin-1")
        notes.append("arquivo não está em UTF-8; lido como Latin-1")
    return text, notes


def looks_binary(content: bytes) -> bool:
    head = content[:8192]
    return b"\x00" in head


def parse_file(file: SourceFile) -> list[ParsedFile]:
    """Dispatch on content (not on the file name): xlsx workbook, wide CSV or sheet CSV."""
    if not file.content.strip():
        raise DataFormatError(f"{file.name}: arquivo vazio")
    if file.content.startswith(b"PK"):
        return _parse_workbook(file)
    if looks_binary(file.content):
        raise DataFormatError(f"{file.name}: arquivo binário; esperado CSV (texto) ou XLSX da PEDE")
    text, notes = decode_text(file)
    header, rows = _split_csv(file.name, text)
    if "NOME" in header and any(h.startswith("INDE_20") for h in header):
        parsed = parse_wide(_to_frame(header, rows), file.name)
    elif "RA" in header and any(h.upper().startswith("INDE") for h in header):
        parsed = parse_sheet(_to_frame(header, rows), file.name)
    else:
        raise DataFormatError(
            f"{file.name}: não é um arquivo da PEDE; cabeçalho sem as colunas de identificação "
            f"(NOME com INDE_AAAA, ou RA com INDE). Primeiras colunas: {header[:6]}"
        )
    parsed.notes[:0] = notes
    return [parsed]


def _split_csv(name: str, text: str) -> tuple[list[str], list[list[str]]]:
    first_line = text.splitlines()[0] if text.splitlines() else ""
    counts = {sep: first_line.count(sep) for sep in (";", ",", "\t", "|")}
    separator = max(counts, key=lambda s: counts[s])
    if counts[separator] == 0:
        raise DataFormatError(f"{name}: cabeçalho com uma única coluna; separador não reconhecido")
    if separator not in (";", ","):
        shown = "TAB" if separator == "\t" else separator
        raise DataFormatError(
            f"{name}: separador {shown!r} não suportado; use ';' (planilha 2020-2022) "
            "ou ',' (exportação por aba 2022-2024)"
        )
    records = list(csv.reader(io.StringIO(text), delimiter=separator))
    header = [h.strip() for h in records[0]]
    rows = [r for r in records[1:] if any(cell.strip() for cell in r)]
    bad = [(i + 2, len(r)) for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        last_line, fields = bad[-1]
        truncated = not text.endswith(("\n", "\r")) and last_line == len(rows) + 1
        if truncated and len(bad) == 1:
            raise DataFormatError(
                f"{name}: arquivo truncado: a última linha ({last_line}) tem {fields} campos e o "
                f"cabeçalho tem {len(header)}"
            )
        shown = ", ".join(f"linha {line}: {n} campos" for line, n in bad[:5])
        raise DataFormatError(
            f"{name}: {len(bad)} linha(s) com número de campos diferente do cabeçalho "
            f"({len(header)}): {shown}"
        )
    if not rows:
        raise DataFormatError(f"{name}: só há o cabeçalho, nenhuma linha de dados")
    return header, rows


def _to_frame(header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, dtype="string")
    frame.columns = pd.Index(_dedupe_headers(header))
    return frame


def _dedupe_headers(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in header:
        n = seen.get(name, 0)
        out.append(name if n == 0 else f"{name}.{n}")
        seen[name] = n + 1
    return out


def _parse_workbook(file: SourceFile) -> list[ParsedFile]:
    try:
        sheets = pd.read_excel(io.BytesIO(file.content), sheet_name=None, dtype=str)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise DataFormatError(
            f"{file.name}: XLSX corrompido ou truncado ({type(exc).__name__})"
        ) from exc
    parsed: list[ParsedFile] = []
    skipped: list[str] = []
    for sheet_name, frame in sheets.items():
        columns = [str(c).strip() for c in frame.columns]
        if "RA" not in columns or not any(c.upper().startswith("INDE") for c in columns):
            skipped.append(str(sheet_name))
            continue
        frame.columns = pd.Index(columns)
        parsed.append(parse_sheet(frame.astype("string"), f"{file.name}[{sheet_name}]"))
    if not parsed:
        raise DataFormatError(
            f"{file.name}: nenhuma aba da PEDE reconhecida (abas: {', '.join(map(str, sheets))})"
        )
    if skipped:
        parsed[0].notes.append(f"abas ignoradas (não são da PEDE): {', '.join(skipped)}")
    return parsed


def _require(frame: pd.DataFrame, columns: list[str], name: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{name}: colunas obrigatórias ausentes {what}: {', '.join(missing)}")


# ---------------------------------------------------------------------------------------------
# Wide CSV (2020-2022)

_WIDE_YEAR_RE: Final = re.compile(r"^INDE_(\d{4})$")
_WIDE_INDICATORS: Final = tuple(i.upper() for i in INDICATORS)


def parse_wide(frame: pd.DataFrame, name: str) -> ParsedFile:
    years = sorted(int(m.group(1)) for c in frame.columns if (m := _WIDE_YEAR_RE.match(c)))
    parts = []
    for year in years:
        fase_column = f"FASE_TURMA_{year}" if f"FASE_TURMA_{year}" in frame else f"FASE_{year}"
        required = [f"{k}_{year}" for k in (*_WIDE_INDICATORS, "PEDRA", "PONTO_VIRADA")]
        _require(frame, [*required, fase_column], name, f"do ano {year}")
        parts.append(_wide_year(frame, year, fase_column))
    rows = pd.concat(parts, ignore_index=True)
    return ParsedFile(name=name, kind="pede-2020-2022-csv", rows=rows)


def _wide_year(frame: pd.DataFrame, year: int, fase_column: str) -> pd.DataFrame:
    def col(base: str) -> pd.Series:
        key = f"{base}_{year}"
        return frame[key] if key in frame else pd.Series(pd.NA, index=frame.index, dtype="string")

    fase, turma, fase_junk = split_fase_turma(frame[fase_column])
    if f"TURMA_{year}" in frame:
        turma = parse_turma(col("TURMA"))
    out = pd.DataFrame(
        {
            "aluno_id": _clean(frame["NOME"]).str.upper(),
            "ano": year,
            "fase": fase,
            "turma": turma,
            "idade": parse_number(col("IDADE_ALUNO")),
            "anos_pm": parse_number(col("ANOS_PM")).astype("Int64"),
            "ano_ingresso": parse_number(col("ANO_INGRESSO")).astype("Int64"),
            "instituicao": parse_instituicao(col("INSTITUICAO_ENSINO_ALUNO")),
            "pedra": parse_pedra(col("PEDRA")),
            "inde": parse_indicator(col("INDE")),
            "pv": parse_pv(col("PONTO_VIRADA")),
            "defasagem": parse_number(col("DEFASAGEM")).astype("Int64"),
            "nota_mat": parse_indicator(col("NOTA_MAT")),
            "nota_por": parse_indicator(col("NOTA_PORT")),
            "nota_ing": parse_indicator(col("NOTA_ING")),
            "ranking_geral": parse_number(col("CG")).astype("Int64"),
        }
    )
    for indicator in INDICATORS:
        out[indicator] = parse_indicator(col(indicator.upper()))
    ingressante = _clean(col("SINALIZADOR_INGRESSANTE")).str.lower() == "ingressante"
    out.loc[ingressante.fillna(False).astype(bool), "ano_ingresso"] = year
    if out["defasagem"].isna().all() and f"NIVEL_IDEAL_{year}" in frame:
        out["defasagem"] = fase - parse_fase_ideal(col("NIVEL_IDEAL"))

    numeric = [col(k) for k in ("INDE", "IDADE_ALUNO", "ANOS_PM", *_WIDE_INDICATORS)]
    junk = fase_junk.copy()
    for series in numeric:
        junk |= junk_mask(series)
    junk |= _clean(col("PEDRA")).notna() & out["pedra"].isna()
    out["_junk"] = junk.fillna(False).astype(bool)
    present = [col(k) for k in ("INDE", "PEDRA", "PONTO_VIRADA", *_WIDE_INDICATORS)]
    out["_present"] = pd.concat([s.notna() & (s.str.strip() != "") for s in present], axis=1).any(
        axis=1
    )
    out["origem"] = f"csv-{year}"
    return out[out["_present"]].drop(columns="_present")


# ---------------------------------------------------------------------------------------------
# Workbook sheet / sheet CSV (2022-2024)

_SHEET_INDE_RE: Final = re.compile(r"^INDE\s+(\d{2}|\d{4})$", re.IGNORECASE)


def sheet_year(columns: list[str]) -> int:
    years = [int(m.group(1)) for c in columns if (m := _SHEET_INDE_RE.match(c))]
    four_digit = [y for y in years if y >= 1000]
    if four_digit:
        return max(four_digit)
    if years:
        return 2000 + max(years)
    raise DataFormatError("coluna INDE do ano não encontrada (esperado 'INDE 22' ou 'INDE 2023')")


def _first(frame: pd.DataFrame, *candidates: str) -> pd.Series:
    for candidate in candidates:
        if candidate in frame:
            return frame[candidate]
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def parse_sheet(frame: pd.DataFrame, name: str) -> ParsedFile:
    try:
        year = sheet_year(list(frame.columns))
    except DataFormatError as exc:
        raise DataFormatError(f"{name}: {exc}") from exc
    yy = year % 100
    inde_column = f"INDE {year}" if f"INDE {year}" in frame else f"INDE {yy}"
    required = ["RA", "Fase", inde_column, "IAA", "IEG", "IPS", "IDA", "IPV", "IAN"]
    _require(frame, required, name, f"da aba {year}")

    fase, turma_from_fase, fase_junk = split_fase_turma(frame["Fase"])
    turma = parse_turma(_first(frame, "Turma")).fillna(turma_from_fase)
    out = pd.DataFrame(
        {
            "aluno_id": _clean(frame["RA"]).str.upper(),
            "ano": year,
            "fase": fase,
            "turma": turma,
            "idade": parse_age(_first(frame, f"Idade {yy}", "Idade")),
            "genero": parse_genero(_first(frame, "Gênero", "Genero")),
            "ano_ingresso": parse_number(_first(frame, "Ano ingresso")).astype("Int64"),
            "instituicao": parse_instituicao(_first(frame, "Instituição de ensino")),
            "pedra": parse_pedra(_first(frame, f"Pedra {year}", f"Pedra {yy}")),
            "inde": parse_indicator(frame[inde_column]),
            "pv": parse_pv(_first(frame, "Atingiu PV")),
            "defasagem": parse_number(_first(frame, "Defasagem", "Defas")).astype("Int64"),
            "nota_mat": parse_indicator(_first(frame, "Matem", "Mat")),
            "nota_por": parse_indicator(_first(frame, "Portug", "Por")),
            "nota_ing": parse_indicator(_first(frame, "Inglês", "Ingles", "Ing")),
            "ranking_geral": parse_number(_first(frame, "Cg")).astype("Int64"),
        }
    )
    for indicator in INDICATORS:
        out[indicator] = parse_indicator(_first(frame, indicator.upper()))
    notes = []
    if "IPP" not in frame:
        out["ipp"] = solve_ipp_from_inde(out)
        notes.append(f"aba {year} sem coluna IPP: IPP recalculado pela fórmula do INDE")

    junk = fase_junk.copy()
    for column in ("IAA", "IEG", "IPS", "IDA", "IPV", "IAN", inde_column):
        junk |= junk_mask(frame[column])
    out["_junk"] = junk.fillna(False).astype(bool)
    out["origem"] = f"xlsx-{year}"
    return ParsedFile(name=name, kind=f"pede-{year}-sheet", rows=out, notes=notes)


def solve_ipp_from_inde(rows: pd.DataFrame) -> pd.Series:
    """IPP = (INDE − Σ other weighted indicators) / w_IPP, valid for phases 0-7 only."""
    others = sum(w * rows[k] for k, w in INDE_WEIGHTS.items() if k != "ipp")
    ipp = ((rows["inde"] - others) / INDE_WEIGHTS["ipp"]).astype("Float64")
    ipp = ipp.where(rows["fase"].fillna(99) <= 7)
    return ipp.clip(0.0, 10.0).round(4)
