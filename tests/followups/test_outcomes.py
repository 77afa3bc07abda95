"""The action → outcome report: Wilson and Newcombe intervals against published values, and
the counts of each group on a small roster written by hand."""

from __future__ import annotations

import math

import pytest

from passos_magicos.followups.outcomes import newcombe, outcome_report, report_lines, wilson
from passos_magicos.performance_history import RealisedStudent


def test_wilson_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I (method 3, Wilson score).
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_newcombe_difference_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II (method 10).
    assert newcombe(56, 70, 48, 80) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)
    assert newcombe(9, 10, 3, 10) == pytest.approx((0.6, 0.1705, 0.8090), abs=1e-4)
    assert newcombe(5, 56, 0, 29) == pytest.approx((0.0893, -0.0381, 0.1926), abs=1e-4)
    assert newcombe(10, 10, 0, 20) == pytest.approx((1.0, 0.6791, 1.0), abs=1e-4)
    assert all(math.isnan(v) for v in newcombe(1, 2, 0, 0))


def student(i: int, flagged: bool, reached: bool | None) -> RealisedStudent:
    return RealisedStudent(
        f"RA-{i}", i, 1 - i / 100, flagged, reached, "derivado", "lista_pontuada"
    )


def test_report_counts_each_group() -> None:
    roster = [
        student(1, True, True),  # mentoria, concluded
        student(2, True, False),  # mentoria in progress + reforço concluded
        student(3, True, True),  # only planned → "sem"
        student(4, True, False),  # nothing
        student(5, True, None),  # flagged, left the programme: no outcome
        student(6, False, True),  # not flagged, followed up anyway: outside the comparison
        student(7, True, True),  # cancelled only → "sem"
    ]
    followups = {
        "RA-1": [("mentoria", "concluido")],
        "RA-2": [("mentoria", "em_andamento"), ("reforço escolar", "concluido")],
        "RA-3": [("mentoria", "planejado")],
        "RA-5": [("outro", "concluido")],
        "RA-6": [("outro", "concluido")],
        "RA-7": [("reforço escolar", "cancelado")],
    }
    report = outcome_report(roster, followups, 2023)
    assert report["descritivo"] is True and "não causal" in report["aviso"]
    assert (report["ciclo"], report["ciclo_desfecho"]) == (2023, 2024)
    assert report["sinalizados"] == 6 and report["sinalizados_sem_desfecho"] == 1
    assert report["registros"] == 7 and report["alunos_com_registro"] == 6
    assert report["registros_de_nao_sinalizados"] == 1
    assert report["so_planejados_ou_cancelados"] == 2
    com, sem = report["com_acompanhamento"], report["sem_acompanhamento"]
    assert (com["n"], com["atingiram_pv"]) == (2, 1)
    assert (sem["n"], sem["atingiram_pv"]) == (3, 2)
    assert com["taxa"]["valor"] == 0.5 and sem["taxa"]["valor"] == pytest.approx(2 / 3, abs=1e-6)
    low, high = wilson(1, 2)
    assert (com["taxa"]["ic_inf"], com["taxa"]["ic_sup"]) == pytest.approx((low, high), abs=1e-6)
    expected = newcombe(1, 2, 2, 3)
    difference = report["diferenca"]
    assert (difference["valor"], difference["ic_inf"], difference["ic_sup"]) == pytest.approx(
        expected, abs=1e-6
    )
    by_type = {g["tipo"]: (g["n"], g["atingiram_pv"]) for g in report["por_tipo"]}
    assert by_type == {"mentoria": (2, 1), "reforço escolar": (1, 0)}
    text = "\n".join(report_lines(report))
    assert "descritivo, não causal" in text and "com acompanhamento: 50.0%" in text


def test_report_without_any_follow_up() -> None:
    report = outcome_report([student(1, True, True), student(2, True, False)], None, 2023)
    assert report["com_acompanhamento"] == {
        "n": 0,
        "atingiram_pv": 0,
        "taxa": {"valor": None, "ic_inf": None, "ic_sup": None},
    }
    assert report["sem_acompanhamento"]["n"] == 2 and report["registros"] == 0
    assert report["diferenca"] == {"valor": None, "ic_inf": None, "ic_sup": None}
