"""Transitions use only cycle t (and t−1); the leakage guard stops lookups of the answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from passos_magicos.data.schema import conform
from passos_magicos.features import (
    LABEL,
    MODEL_INPUTS,
    LeakageError,
    build_transitions,
    check_leakage,
    model_frame,
    scoring_frame,
)


def student_years(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = {
        "fase": 2,
        "inde": 7.0,
        "iaa": 8.0,
        "ieg": 7.0,
        "ips": 7.0,
        "ipp": 7.0,
        "ida": 6.0,
        "ipv": 7.0,
        "ian": 5.0,
        "pedra": "Ametista",
        "origem": "csv",
    }
    return conform(pd.DataFrame([base | r for r in rows]))


def test_label_is_next_cycle_pv_and_features_are_from_t() -> None:
    table = student_years(
        [
            {"aluno_id": "A", "ano": 2020, "ipv": 6.0, "pv": False},
            {"aluno_id": "A", "ano": 2021, "ipv": 9.5, "pv": True},
            {"aluno_id": "A", "ano": 2022, "ipv": 5.0, "pv": False},
            {"aluno_id": "B", "ano": 2021, "ipv": 8.0, "pv": False},  # left after 2021
        ]
    )
    transitions = build_transitions(table)
    frame = transitions.frame.set_index(["aluno_id", "ano"])
    assert list(frame.index) == [("A", 2020), ("A", 2021)]
    assert frame.loc[("A", 2020), LABEL] == 1  # PV of 2021
    assert frame.loc[("A", 2020), "ipv"] == 6.0  # IPV of 2020, not of 2021
    assert frame.loc[("A", 2021), LABEL] == 0
    assert frame.loc[("A", 2021), "ipv_anterior"] == 6.0
    assert np.isnan(frame.loc[("A", 2020), "ipv_anterior"])
    assert transitions.years == [2021, 2022]
    assert tuple(transitions.X.columns) == MODEL_INPUTS


def test_unlabelled_next_cycle_gives_no_transition() -> None:
    table = student_years(
        [
            {"aluno_id": "A", "ano": 2022, "pv": True},
            {"aluno_id": "A", "ano": 2023, "pv": None},  # 2023 has no PV labels
        ]
    )
    assert len(build_transitions(table)) == 0


def test_previous_cycle_is_only_the_immediately_previous_year() -> None:
    table = student_years(
        [
            {"aluno_id": "A", "ano": 2020, "inde": 5.0, "pv": False},
            {"aluno_id": "A", "ano": 2022, "inde": 8.0, "pv": True},  # skipped 2021
        ]
    )
    frame = model_frame(table).set_index("ano")
    assert np.isnan(frame.loc[2022, "inde_anterior"])


def test_scoring_frame_takes_the_latest_cycle_with_or_without_labels() -> None:
    table = student_years(
        [
            {"aluno_id": "A", "ano": 2023, "pv": None},
            {"aluno_id": "A", "ano": 2024, "pv": None},
            {"aluno_id": "B", "ano": 2024, "pv": None},
        ]
    )
    frame = scoring_frame(table)
    assert frame["ano"].unique().tolist() == [2024]
    assert sorted(frame["aluno_id"]) == ["A", "B"]


def _population(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        ipv = rng.uniform(4, 10, size=2)
        rows += [
            {"aluno_id": f"A{i}", "ano": 2021, "ipv": ipv[0], "pv": bool(ipv[0] >= 8.5)},
            {"aluno_id": f"A{i}", "ano": 2022, "ipv": ipv[1], "pv": bool(ipv[1] >= 8.5)},
        ]
    return student_years(rows)


def test_leakage_guard_fires_on_same_year_ipv() -> None:
    # horizon=0 pairs PV of year t with IPV of year t: a threshold lookup, AUC 1.0.
    transitions = build_transitions(_population(300, 1), horizon=0)
    with pytest.raises(LeakageError, match=r"ipv \(ROC-AUC 1\.000\)"):
        check_leakage(transitions, auc_limit=0.98)


def test_leakage_guard_rejects_next_cycle_columns_by_name() -> None:
    transitions = build_transitions(_population(300, 2), features=[*MODEL_INPUTS, "ipv_proximo"])
    with pytest.raises(LeakageError, match="ipv_proximo"):
        check_leakage(transitions, auc_limit=0.98)


def test_leakage_guard_passes_honest_features_and_reports_their_auc() -> None:
    transitions = build_transitions(_population(300, 3))
    aucs = check_leakage(transitions, auc_limit=0.98)
    assert set(aucs) <= set(MODEL_INPUTS)
    assert max(aucs.values()) < 0.98


def test_coverage_flags_an_input_absent_in_a_whole_cycle() -> None:
    import numpy as np
    import pandas as pd

    from passos_magicos.features import LABEL, TransitionSet

    frame = pd.DataFrame(
        {
            "aluno_id": ["a", "b", "c", "d"],
            "ano": [2021, 2021, 2022, 2022],
            "ano_alvo": [2022, 2022, 2023, 2023],
            "ipv": [8.0, 7.0, 9.0, 6.0],
            "idade": [np.nan, np.nan, 12.0, 13.0],  # never recorded in 2021
            "ipv_anterior": [np.nan, np.nan, 8.0, np.nan],  # the first cycle has no previous
            LABEL: [1, 0, 1, 0],
        }
    )
    transitions = TransitionSet(frame, ("ipv", "idade", "ipv_anterior"))
    assert transitions.coverage()[2023] == {"ipv": 1.0, "idade": 1.0, "ipv_anterior": 0.5}
    assert transitions.absent_inputs() == {2022: ["idade"]}
