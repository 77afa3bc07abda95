"""Cell parsers and format sniffing: each PEDE quirk is handled on purpose."""

from __future__ import annotations

import pandas as pd
import pytest

from passos_magicos.data import readers
from passos_magicos.data.schema import DataFormatError
from passos_magicos.data.storage import SourceFile


def s(*values: object) -> pd.Series:
    return pd.Series(values, dtype="string")


def test_indicator_artefacts_are_clipped_and_errors_become_missing() -> None:
    parsed = readers.parse_indicator(s("10.00002", "8.500020000000001", "#NULO!", "#DIV/0!", "7"))
    assert parsed.tolist()[:2] == [10.0, 8.5]
    assert parsed.isna().tolist() == [False, False, True, True, False]


def test_indicator_far_above_ten_is_kept_for_the_range_check() -> None:
    assert readers.parse_indicator(s("12.5")).iloc[0] == 12.5


def test_junk_codes_are_flagged_not_silently_dropped() -> None:
    assert readers.junk_mask(s("D108", "7.5", "", "#NULO!", "INCLUIR")).tolist() == [
        True,
        False,
        False,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("raw", "fase", "turma"),
    [
        ("ALFA", 0, None),
        ("FASE 3", 3, None),
        ("3.0", 3, None),
        ("2H", 2, "H"),
        ("1a", 1, "A"),
        ("8", 8, None),
    ],
)
def test_fase_forms(raw: str, fase: int, turma: str | None) -> None:
    parsed_fase, parsed_turma, junk = readers.split_fase_turma(s(raw))
    assert parsed_fase.iloc[0] == fase
    assert (pd.isna(parsed_turma.iloc[0]) and turma is None) or parsed_turma.iloc[0] == turma
    assert not junk.iloc[0]


def test_fase_junk_is_flagged() -> None:
    _, _, junk = readers.split_fase_turma(s("D207"))
    assert junk.iloc[0]


def test_turma_strips_the_phase_and_alfa_prefix() -> None:
    assert readers.parse_turma(s("K", "2K", "ALFA A - G0/G1")).tolist() == ["K", "K", "A"]


def test_ages_stored_as_excel_dates_are_recovered() -> None:
    parsed = readers.parse_age(s("11", "1900-01-11", "1900-01-08 00:00:00", "#N/A"))
    assert parsed.tolist()[:3] == [11.0, 11.0, 8.0]
    assert pd.isna(parsed.iloc[3])


def test_categories_are_normalised() -> None:
    assert readers.parse_pedra(s("Agata", "Ágata", "Topázio", "INCLUIR")).tolist()[:3] == [
        "Ágata",
        "Ágata",
        "Topázio",
    ]
    assert readers.parse_genero(s("Menina", "Masculino")).tolist() == ["Feminino", "Masculino"]
    assert readers.parse_pv(s("Sim", "Não", "#NULO!", "D9600")).tolist()[:2] == [True, False]
    assert readers.parse_instituicao(
        s("Escola Pública", "Rede Decisão/União", "FIAP", "Concluiu o 3º EM")
    ).tolist() == ["publica", "privada", "universidade", "outra"]


def test_ipp_is_solved_from_the_inde_formula() -> None:
    rows = pd.DataFrame(
        {
            "inde": [7.0],
            "ian": [5.0],
            "ida": [6.0],
            "ieg": [8.0],
            "iaa": [9.0],
            "ips": [7.0],
            "ipv": [7.5],
            "fase": pd.array([3], dtype="Int64"),
        }
    )
    # 7.0 = 0.5 + 1.2 + 1.6 + 0.9 + 0.7 + 0.1·IPP + 1.5  →  IPP = 6.0
    assert readers.solve_ipp_from_inde(rows).iloc[0] == pytest.approx(6.0)


def _source(content: bytes, name: str = "f.csv") -> SourceFile:
    return SourceFile(uri=name, name=name, content=content)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "arquivo vazio"),
        (b"   \n\n", "arquivo vazio"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binário"),
        (b"PK\x03\x04truncated-zip", "XLSX corrompido ou truncado"),
        (b"a\tb\tc\n1\t2\t3\n", "separador 'TAB' não suportado"),
        (b"just one column\n1\n", "única coluna"),
        (b"nome,idade\nAna,10\n", "não é um arquivo da PEDE"),
        (b"RA,Fase,INDE 22\n", "só há o cabeçalho"),
        (b"RA,Fase,INDE 22\nRA-1,3,7.1\nRA-2,3", "truncado"),
        (b"RA,Fase,INDE 22\nRA-1,3\nRA-2,3,7.1\n", "número de campos diferente"),
    ],
)
def test_bad_files_say_what_is_wrong(content: bytes, message: str) -> None:
    with pytest.raises(DataFormatError, match=message):
        readers.parse_file(_source(content))


def test_missing_columns_are_named() -> None:
    content = b"RA,Fase,INDE 22,IAA,IEG\nRA-1,3,7.1,8,9\n"
    with pytest.raises(DataFormatError, match="IPS, IDA, IPV, IAN"):
        readers.parse_file(_source(content))


def test_wide_csv_with_a_year_block_missing_columns_is_rejected() -> None:
    content = b"NOME;INDE_2021;IPV_2021\nALUNO-1;7.0;8.0\n"
    with pytest.raises(DataFormatError, match="do ano 2021"):
        readers.parse_file(_source(content))


def test_latin1_file_is_read_with_a_note() -> None:
    header = "RA,Fase,INDE 22,IAA,IEG,IPS,IDA,IPV,IAN,Gênero\n"
    row = "RA-1,3,7.1,8,9,7,6,7.5,5,Menina\n"
    parsed = readers.parse_file(_source((header + row).encode("latin-1")))
    assert parsed[0].rows["genero"].iloc[0] == "Feminino"
    assert any("Latin-1" in note for note in parsed[0].notes)
