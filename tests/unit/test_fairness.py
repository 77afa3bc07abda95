"""Fairness per group (training/fairness.py): the figures are what they claim, a group whose
labels are noise is flagged, groups that differ only by chance are (almost) never flagged, the
gate warns or blocks on a flagged gap, and group attributes never become model inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from passos_magicos import registry
from passos_magicos.data.schema import conform
from passos_magicos.features import (
    GROUP_ATTRIBUTES,
    MODEL_INPUTS,
    LeakageError,
    build_transitions,
    check_leakage,
)
from passos_magicos.performance import bootstrap_masses, calibration_metrics, selection_metrics
from passos_magicos.settings import Settings
from passos_magicos.training.fairness import (
    NAO_INFORMADO,
    GroupFairness,
    YearFairness,
    group_labels,
    year_fairness,
)
from passos_magicos.training.packaging import model_signature

GROUPS = {
    "genero": (("feminino", "masculino"), (0.52, 0.48)),
    "escola": (("pública", "privada/parceira"), (0.85, 0.15)),
    "fase": (
        tuple(f"fase {k}" for k in range(8)),
        (0.22, 0.2, 0.18, 0.14, 0.1, 0.08, 0.05, 0.03),
    ),
    "anos_programa": (("primeiro ano", "segundo ano ou mais"), (0.35, 0.65)),
}
# Measured by test_groups_that_differ_only_by_chance_are_rarely_flagged (README "Equidade").
NULL_SEEDS = 100
NULL_MAX_FLAGGED_SEEDS = 8  # ~5 % family-wise per year, plus binomial noise over 100


def _cohort(
    seed: int, n: int = 600
) -> tuple[np.ndarray, np.ndarray, float, dict[str, np.ndarray], np.random.Generator]:
    """Calibrated probabilities, labels drawn from them, groups drawn independently of both,
    and the label rule of the product (flag as many as the probabilities expect)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-2.2, 1.2, n)))
    y = (rng.random(n) < p).astype(float)
    groups = {
        key: rng.choice(np.array(labels, dtype=object), n, p=np.array(shares) / sum(shares))
        for key, (labels, shares) in GROUPS.items()
    }
    threshold = float(np.sort(p)[::-1][round(p.sum()) - 1])
    return y, p, threshold, groups, rng


def _group(year: YearFairness, grouping: str, group: str) -> GroupFairness:
    return next(g for g in year.groups if g.grouping == grouping and g.group == group)


def test_point_figures_are_the_plain_definitions() -> None:
    y, p, threshold, groups, _ = _cohort(seed=3)
    year = year_fairness(y, p, threshold, groups, test_year=2024, replicates=200, seed=0)
    n = len(y)
    top15 = np.zeros(n, dtype=bool)
    top15[np.argsort(-p, kind="stable")[: math.ceil(0.15 * n)]] = True  # over the whole year
    for label in ("feminino", "masculino"):
        mask = groups["genero"] == label
        yg, pg, flagged = y[mask], p[mask], p[mask] >= threshold
        got = _group(year, "genero", label)
        assert (got.n, got.positives) == (mask.sum(), yg.sum())
        expected = {
            "taxa_real": yg.mean(),
            "taxa_prevista": flagged.mean(),
            "recall_rotulo": flagged[yg == 1].mean(),
            "falsos_positivos_rotulo": flagged[yg == 0].mean(),
            "recall_top15": top15[mask][yg == 1].mean(),
            "roc_auc": roc_auc_score(yg, pg),
            "prob_media": pg.mean(),
            "calibracao": pg.mean() - yg.mean(),
        }
        for metric, value in expected.items():
            figure = got.figures[metric]
            assert figure.value == pytest.approx(value, abs=1e-12), metric
            assert figure.low <= figure.value + 1e-12 and figure.value <= figure.high + 1e-12
        other = _group(year, "genero", "masculino" if label == "feminino" else "feminino")
        gap = got.gaps["roc_auc"]
        assert gap.difference.value == pytest.approx(
            got.figures["roc_auc"].value - other.figures["roc_auc"].value
        )
        assert gap.rest == pytest.approx(other.figures["roc_auc"].value)


def test_a_bootstrap_replicate_is_the_metric_of_the_resampled_students() -> None:
    rng = np.random.default_rng(5)
    y, p = (rng.random(200) < 0.2).astype(float), rng.random(200)
    selected = p > 0.7
    pos, neg = bootstrap_masses(y, 1, seed=9)
    index = np.repeat(np.arange(200), (pos + neg)[0].astype(int))
    yr, pr, sr = y[index], p[index], selected[index]
    got = selection_metrics(selected, pos, neg) | calibration_metrics(p, pos, neg)
    assert got["recall"][0] == pytest.approx(sr[yr == 1].mean())
    assert got["falsos_positivos"][0] == pytest.approx(sr[yr == 0].mean())
    assert got["selecionados"][0] == pytest.approx(sr.mean())
    assert got["calibracao"][0] == pytest.approx(pr.mean() - yr.mean())


def test_a_group_whose_labels_are_noise_is_flagged_and_only_that_group() -> None:
    y, p, threshold, groups, rng = _cohort(seed=11, n=800)
    girls = groups["genero"] == "feminino"
    y = y.copy()
    y[girls] = (rng.random(girls.sum()) < y.mean()).astype(float)  # unrelated to p
    year = year_fairness(y, p, threshold, groups, test_year=2024, replicates=300, seed=1)
    flagged = {(f.grouping, f.group) for f in year.flags}
    assert flagged == {("genero", "feminino")}
    metrics = {f.gap.metric for f in year.flags}
    assert "roc_auc" in metrics
    for flag in year.flags:
        gap = flag.gap
        assert gap.high_adjusted < 0  # the adjusted interval excludes zero on the harmful side
        assert "feminino" in flag.text and "intervalo ajustado" in flag.text


def test_groups_that_differ_only_by_chance_are_rarely_flagged() -> None:
    """The false-flag rate of the rule: groups independent of everything, labels drawn from
    calibrated probabilities; a seed counts when anything at all is flagged in its year."""
    flagged_seeds = 0
    tests = []
    for seed in range(NULL_SEEDS):
        y, p, threshold, groups, _ = _cohort(seed=1000 + seed)
        year = year_fairness(y, p, threshold, groups, test_year=2024, replicates=150, seed=seed)
        flagged_seeds += bool(year.flags)
        tests.append(year.tests)
    rate = flagged_seeds / NULL_SEEDS
    print(f"falsos alertas: {flagged_seeds}/{NULL_SEEDS} sementes ({rate:.0%})")
    assert min(tests) >= 40  # most comparisons were made: the rule was exercised
    assert flagged_seeds <= NULL_MAX_FLAGGED_SEEDS


def test_small_and_unknown_groups_are_shown_but_never_flagged() -> None:
    y, p, threshold, groups, _ = _cohort(seed=4)
    tiny = np.zeros(len(y), dtype=bool)
    tiny[np.flatnonzero(y == 1)[:10]] = True  # ten PV students...
    tiny[np.flatnonzero(y == 0)[:10]] = True  # ...and ten without
    p = p.copy()
    p[tiny & (y == 1)] = 0.001  # the model misses every one of them
    groups["genero"] = np.where(tiny, "feminino", "masculino").astype(object)
    groups["escola"] = np.where(tiny, NAO_INFORMADO, "pública").astype(object)
    year = year_fairness(y, p, threshold, groups, test_year=2024, replicates=200, seed=2)
    small = _group(year, "genero", "feminino")
    assert small.figures["recall_rotulo"].value == 0.0
    assert not small.compared and "grupo pequeno (20 alunos" in (small.reason or "")
    assert not small.flagged and not any(g.tested for g in small.gaps.values())
    unknown = _group(year, "escola", NAO_INFORMADO)
    assert unknown.n == 20 and not unknown.compared and not unknown.gaps
    assert not year.flags


def test_group_labels_from_the_canonical_attributes() -> None:
    frame = pd.DataFrame(
        {
            "genero": ["Feminino", "Masculino", None, "Feminino"],
            "instituicao": ["publica", "privada", "universidade", None],
            "fase": [0.0, 3.0, np.nan, 7.0],
            "anos_pm": [0.0, 1.0, 4.0, np.nan],
        }
    )
    labels = group_labels(frame)
    assert list(labels["genero"]) == ["feminino", "masculino", NAO_INFORMADO, "feminino"]
    assert list(labels["escola"]) == ["pública", "privada/parceira", "outra", NAO_INFORMADO]
    assert list(labels["fase"]) == ["fase 0 (alfa)", "fase 3", NAO_INFORMADO, "fase 7"]
    assert list(labels["anos_programa"]) == [
        "primeiro ano",
        "segundo ano ou mais",
        "segundo ano ou mais",
        NAO_INFORMADO,
    ]


# -- group attributes are never model inputs ----------------------------------------------------


def test_group_attributes_travel_with_the_transitions_but_are_never_model_inputs() -> None:
    base = {"fase": 2, "inde": 7.0, "ipv": 7.0, "ida": 6.0, "ieg": 7.0, "origem": "xlsx"}
    rows = [
        {"aluno_id": f"RA-{i}", "ano": year, "pv": bool((i + year) % 3 == 0)}
        | {"genero": "Feminino" if i % 2 else "Masculino", "instituicao": "publica"}
        for i in range(40)
        for year in (2022, 2023)
    ]
    transitions = build_transitions(conform(pd.DataFrame([base | r for r in rows])))
    assert set(GROUP_ATTRIBUTES) <= set(transitions.frame.columns)
    assert set(transitions.frame["genero"]) == {"Feminino", "Masculino"}
    assert not set(GROUP_ATTRIBUTES) & set(MODEL_INPUTS)
    assert not set(GROUP_ATTRIBUTES) & set(transitions.X.columns)
    signature = {spec.name for spec in model_signature().inputs.inputs}
    assert not set(GROUP_ATTRIBUTES) & signature
    with pytest.raises(LeakageError, match="atributos de grupo entre as features: genero"):
        check_leakage(
            build_transitions(
                conform(pd.DataFrame([base | r for r in rows])), (*MODEL_INPUTS, "genero")
            ),
            0.98,
        )


# -- the gate and the promotion history ----------------------------------------------------------


def _candidate(flags: dict[str, str] | None) -> registry.GateCandidate:
    return registry.GateCandidate(
        metric="oot_roc_auc",
        value=0.76,
        evaluation_key="k",
        test_year=2024,
        inde_verdict="empata",
        inde_difference="+0.000",
        fairness_flags=flags,
    )


FLAG = {"genero:feminino:roc_auc": "2023→2024, gênero “feminino”: ROC-AUC 0,55 contra 0,78"}


def test_a_flagged_gap_warns_by_default_and_blocks_when_asked() -> None:
    warned = registry.absolute_checks(Settings(_env_file=None), _candidate(FLAG))  # type: ignore[call-arg]
    assert warned.passed
    assert "atenção: lacunas de equidade sinalizadas em 2023→2024" in warned.summary()
    assert "ROC-AUC 0,55" in warned.summary()
    tags = warned.tags()
    assert tags["gate.fairness"] == "alerta" and tags["fairness.flagged"] == "true"
    assert json.loads(tags["fairness.flags"]) == ["genero:feminino:roc_auc"]

    blocked = registry.absolute_checks(
        Settings(_env_file=None, FAIRNESS_GATE="block"),  # type: ignore[call-arg]
        _candidate(FLAG),
    )
    assert not blocked.passed and "FAIRNESS_GATE=block" in blocked.summary()
    assert blocked.tags()["gate.fairness"] == "bloqueio"

    clean = registry.absolute_checks(
        Settings(_env_file=None, FAIRNESS_GATE="block"),  # type: ignore[call-arg]
        _candidate({}),
    )
    assert clean.passed and "nenhuma lacuna de equidade sinalizada" in clean.summary()
    assert clean.tags()["fairness.flagged"] == "false"
    unknown = registry.absolute_checks(Settings(_env_file=None), _candidate(None))  # type: ignore[call-arg]
    assert unknown.tags()["gate.fairness"] == "sem_relatorio"
    assert "fairness.flagged" not in unknown.tags()


def test_promotion_history_records_the_versions_flagged_gaps(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = "passos-magicos-ponto-virada"
    client.create_registered_model(name)
    verdicts = [
        registry.absolute_checks(Settings(_env_file=None), _candidate(flags))  # type: ignore[call-arg]
        for flags in (FLAG, {}, None)
    ]
    for verdict in verdicts:
        client.create_model_version(name, source=str(tmp_path / "art"), tags=verdict.tags())
    for version in ("1", "2", "3"):
        registry.promote(client, name, version, by="teste")
    events = registry.promotion_history(client, name)
    assert [e["versao"] for e in events] == ["1", "2", "3"]
    assert [e["lacunas_equidade"] for e in events] == [["genero:feminino:roc_auc"], [], None]
