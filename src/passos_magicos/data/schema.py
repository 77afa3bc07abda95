"""The canonical student-year table: one row per (aluno_id, ano), whatever file it came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # loaded by the functions below: the constants are needed without pandas
    import pandas as pd

INDICATORS: Final = ("iaa", "ieg", "ips", "ipp", "ida", "ipv", "ian")
"""PEDE indicators (0-10). INDE is their weighted mean; same-year PV is a threshold on IPV."""

# INDE weights for phases 0-7 (phase 8, universitários, uses other weights).
INDE_WEIGHTS: Final = {
    "ian": 0.1,
    "ida": 0.2,
    "ieg": 0.2,
    "iaa": 0.1,
    "ips": 0.1,
    "ipp": 0.1,
    "ipv": 0.2,
}

PEDRAS: Final = ("Quartzo", "Ágata", "Ametista", "Topázio")
"""Pedra is a binning of INDE, from the lowest to the highest band."""

GENEROS: Final = ("Feminino", "Masculino")
TIPOS_INSTITUICAO: Final = ("publica", "privada", "universidade", "outra")

GRADES: Final = ("nota_mat", "nota_por", "nota_ing")
"""School grades (0-10), recorded from 2022 on; missing in the 2020-2021 cycles."""

PV_OFICIAL: Final = "oficial"
PV_DERIVADO: Final = "derivado"
LABEL_ORIGINS: Final = (PV_OFICIAL, PV_DERIVADO)
"""Where a PV label comes from: the file's own flag, or the PV rule on the cycle's IPV."""

MIN_FASE: Final = 0  # ALFA
MAX_FASE_PV: Final = 7  # phase 8 (universitários) has no Ponto de Virada assessment

# Canonical columns and pandas dtypes, in order.
CANONICAL_DTYPES: Final[dict[str, Any]] = {
    "aluno_id": "string",
    "ano": "int64",
    "fase": "Int64",
    "turma": "string",
    "idade": "Float64",
    "genero": "string",
    "ano_ingresso": "Int64",
    "anos_pm": "Int64",
    "instituicao": "string",
    "pedra": "string",
    "inde": "Float64",
    "iaa": "Float64",
    "ieg": "Float64",
    "ips": "Float64",
    "ipp": "Float64",
    "ida": "Float64",
    "ipv": "Float64",
    "ian": "Float64",
    "defasagem": "Int64",
    "nota_mat": "Float64",  # school grades 0-10: only from 2022 on (CSV 2022, workbook)
    "nota_por": "Float64",
    "nota_ing": "Float64",
    "pv": "boolean",
    "pv_origem": "string",  # LABEL_ORIGINS: official PV or derived by the IPV rule
    "ranking_geral": "Int64",  # CG of 2022: links the 2020-2022 CSV to the 2022-2024 workbook
    "origem": "string",
}
CANONICAL_COLUMNS: Final = tuple(CANONICAL_DTYPES)


class DataFormatError(ValueError):
    """The input is not a PEDE file we can read; the message names what is wrong (pt-BR)."""


def empty_canonical() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CANONICAL_DTYPES.items()})


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Select and type the canonical columns (missing ones become NA)."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for column, dtype in CANONICAL_DTYPES.items():
        values = frame[column] if column in frame else pd.Series(pd.NA, index=frame.index)
        out[column] = values.astype(dtype)
    return out.reset_index(drop=True)
