"""From action to outcome: for the students flagged in cycle t (pv_previsto), the PV rate in
t+1 of those with and without a follow-up, and by type. Added to the realised-performance record
by `passos-magicos evaluate` (and the training's realised stage), so it lives in the monitoring
history beside the figures it belongs to.

It is **descriptive, not causal**: the team chooses whom to follow up (often the students it
worries about most, or those easiest to reach), so the groups differ before any action and a
difference in PV rates says nothing about what the follow-up caused. Every rate comes with its
count and a Wilson 95 % interval; the difference between groups with Newcombe's interval (the
hybrid score method built on the two Wilson intervals), which needs no resampling and behaves
with the small groups this report has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from passos_magicos.followups.store import DONE_STATUSES

Z95: Final = 1.959963984540054
NOT_CAUSAL: Final = (
    "Descritivo, não causal: a equipe escolhe quem acompanhar, então os grupos já eram "
    "diferentes antes de qualquer ação. Uma diferença nas taxas de PV não mede o efeito do "
    "acompanhamento."
)
METHOD: Final = (
    "Alunos sinalizados (PV previsto) no ciclo t com PV conhecido em t+1. “Com acompanhamento”: "
    "ao menos um registro do ciclo t em andamento ou concluído; planejados e cancelados não "
    "contam. Intervalos de 95%: Wilson para cada taxa; Newcombe (escore híbrido) para a diferença."
)


class Outcome(Protocol):
    """What the report needs of each evaluated student (RealisedStudent has it)."""

    @property
    def aluno_id(self) -> str: ...
    @property
    def pv_previsto(self) -> bool: ...
    @property
    def pv_real(self) -> bool | None: ...


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN when n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """p1 − p2 with Newcombe's hybrid score interval (method 10 of Newcombe, 1998)."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan, math.nan
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, max(-1.0, low), min(1.0, high)


def _value(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def rate(successes: int, n: int) -> dict[str, Any]:
    low, high = wilson(successes, n)
    return {
        "n": n,
        "atingiram_pv": successes,
        "taxa": {
            "valor": _value(successes / n) if n else None,
            "ic_inf": _value(low),
            "ic_sup": _value(high),
        },
    }


def difference(k1: int, n1: int, k2: int, n2: int) -> dict[str, float | None]:
    value, low, high = newcombe(k1, n1, k2, n2)
    return {"valor": _value(value), "ic_inf": _value(low), "ic_sup": _value(high)}


def _done_types(records: Iterable[tuple[str, str]]) -> set[str]:
    return {tipo for tipo, status in records if status in DONE_STATUSES}


def outcome_report(
    students: Sequence[Outcome],
    followups: Mapping[str, Sequence[tuple[str, str]]] | None,
    ciclo: int,
) -> dict[str, Any]:
    """The report for one evaluated (model, version, cycle t): `students` is the evaluated
    roster, `followups` the (tipo, status) of each student's records of cycle t (None or
    empty: none recorded)."""
    records = followups or {}
    flagged = [s for s in students if s.pv_previsto]
    flagged_ids = {s.aluno_id for s in flagged}
    labelled = [s for s in flagged if s.pv_real is not None]
    with_types = {s.aluno_id: _done_types(records.get(s.aluno_id, ())) for s in labelled}
    done = [s for s in labelled if with_types[s.aluno_id]]
    not_done = [s for s in labelled if not with_types[s.aluno_id]]
    k_done = sum(bool(s.pv_real) for s in done)
    k_not = sum(bool(s.pv_real) for s in not_done)
    by_type: dict[str, list[Outcome]] = {}
    for student in done:
        for tipo in with_types[student.aluno_id]:
            by_type.setdefault(tipo, []).append(student)
    types = []
    for tipo, members in sorted(by_type.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        k = sum(bool(s.pv_real) for s in members)
        types.append(
            {
                "tipo": tipo,
                **rate(k, len(members)),
                "diferenca_vs_sem": difference(k, len(members), k_not, len(not_done)),
            }
        )
    return {
        "estado": "ok",
        "motivo": None,
        "descritivo": True,
        "aviso": NOT_CAUSAL,
        "metodo": METHOD,
        "ciclo": ciclo,
        "ciclo_desfecho": ciclo + 1,
        "sinalizados": len(flagged),
        "sinalizados_sem_desfecho": len(flagged) - len(labelled),
        "registros": sum(len(v) for v in records.values()),
        "alunos_com_registro": len(records),
        "registros_de_nao_sinalizados": sum(
            len(v) for key, v in records.items() if key not in flagged_ids
        ),
        "so_planejados_ou_cancelados": sum(1 for s in not_done if records.get(s.aluno_id)),
        "com_acompanhamento": rate(k_done, len(done)),
        "sem_acompanhamento": rate(k_not, len(not_done)),
        "diferenca": difference(k_done, len(done), k_not, len(not_done)),
        "por_tipo": types,
    }


def unavailable_report(ciclo: int, reason: str) -> dict[str, Any]:
    """The follow-up store could not be read: say so in the record instead of failing."""
    return {
        "estado": "indisponivel",
        "motivo": reason,
        "descritivo": True,
        "aviso": NOT_CAUSAL,
        "metodo": METHOD,
        "ciclo": ciclo,
        "ciclo_desfecho": ciclo + 1,
        "sinalizados": None,
        "sinalizados_sem_desfecho": None,
        "registros": None,
        "alunos_com_registro": None,
        "registros_de_nao_sinalizados": None,
        "so_planejados_ou_cancelados": None,
        "com_acompanhamento": None,
        "sem_acompanhamento": None,
        "diferenca": None,
        "por_tipo": [],
    }


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _rate_text(group: Mapping[str, Any] | None) -> str:
    if not group:
        return "—"
    taxa = group["taxa"]
    if taxa["valor"] is None:
        return f"n={group['n']}"
    return (
        f"{_share(taxa['valor'])} [{_share(taxa['ic_inf'])}; {_share(taxa['ic_sup'])}] "
        f"({group['atingiram_pv']} de {group['n']})"
    )


def _difference_text(value: Mapping[str, Any] | None) -> str:
    if not value or value["valor"] is None:
        return "—"
    return (
        f"{value['valor'] * 100:+.1f} p.p. [{value['ic_inf'] * 100:+.1f}; "
        f"{value['ic_sup'] * 100:+.1f}]"
    )


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """The report as terminal lines (pt-BR), for `passos-magicos evaluate`."""
    cycle, outcome = report["ciclo"], report["ciclo_desfecho"]
    title = (
        f"  Da ação ao desfecho (sinalizados de {cycle}, PV em {outcome}; descritivo, não causal)"
    )
    if report["estado"] != "ok":
        return [title, f"    não calculado: {report['motivo']}"]
    lines = [
        title,
        f"    {report['sinalizados']} sinalizados ({report['sinalizados_sem_desfecho']} sem PV "
        f"conhecido em {outcome}); {report['registros']} acompanhamentos registrados para "
        f"{cycle}",
        f"    com acompanhamento: {_rate_text(report['com_acompanhamento'])}",
        f"    sem acompanhamento: {_rate_text(report['sem_acompanhamento'])}",
        f"    diferença (com − sem): {_difference_text(report['diferenca'])}",
    ]
    lines.extend(
        f"    {group['tipo']}: {_rate_text(group)}; vs. sem: "
        f"{_difference_text(group['diferenca_vs_sem'])}"
        for group in report["por_tipo"]
    )
    return lines
