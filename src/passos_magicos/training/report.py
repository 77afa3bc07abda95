"""What a training run shows people: plots, plain-Portuguese claims and the pt-BR model card.

A claim is a figure with its interval and its baseline: the model "supera" a baseline only when
the paired bootstrap interval of the difference excludes zero; otherwise it "empata" (or
"perde"), and the text says so with the figures.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from passos_magicos.data.dataset import DROP_REASONS
from passos_magicos.data.schema import PV_DERIVADO
from passos_magicos.performance import EMPATA, PERDE, SUPERA, Comparison, Interval
from passos_magicos.training.backtest import MODEL, NAMES, Backtest
from passos_magicos.training.evaluation import BASELINES, Evaluation
from passos_magicos.training.fairness import card_lines
from passos_magicos.training.selection import SELECTION_MARGIN

if TYPE_CHECKING:
    from passos_magicos.training.outcome import TrainOutcome

METRIC_LABELS: Final = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "brier": "Brier (menor é melhor)",
    "precision": "Precisão no limiar",
    "recall": "Recall no limiar",
    "f1": "F1 no limiar",
    "recall_top15": "Recall nos 15% mais prováveis",
    "recall_top25": "Recall nos 25% mais prováveis",
    "predicted_rate": "Taxa de PV prevista",
}
INTERVAL_METRICS: Final = ("roc_auc", "pr_auc", "brier", "recall_top15", "recall_top25")
LABEL_RULE: Final = (
    "no ciclo pontuado, são sinalizados tantos alunos quantos se espera que atinjam o PV — a "
    "soma das probabilidades calibradas deles —, dos mais aos menos prováveis; o limiar é a "
    "probabilidade do último sinalizado (no backtest, a mesma regra em cada ano, com a lista "
    "de alunos daquele ano)"
)
SELECTION_RULE: Final = (
    "`auto` escolhe só com o passado: cada tipo é ajustado nas transições anteriores a cada ano "
    "e avaliado nele (origem móvel; com uma só transição, CV agrupada por aluno). Fica o tipo "
    "mais simples (`compact_logistic` < `logistic_regression` < `random_forest` < "
    f"`hist_gradient_boosting`), a menos que um mais complexo tenha ROC-AUC médio ao menos "
    f"{SELECTION_MARGIN:.2f} maior e não perca em nenhum ano."
)


def write_plots(evaluation: Evaluation, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    y = evaluation.y_true
    curves = {"modelo": evaluation.y_score} | {
        BASELINES[name]: scores for name, scores in evaluation.baseline_scores.items()
    }
    title = "fora do tempo" if evaluation.protocol == "out_of_time" else "CV agrupada por aluno"
    paths = []

    fig, ax = plt.subplots(figsize=(6, 5))
    for label, scores in curves.items():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=label, linewidth=2 if label == "modelo" else 1)
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(xlabel="Falsos positivos", ylabel="Verdadeiros positivos", title=f"ROC ({title})")
    ax.legend(fontsize=7)
    paths.append(_save(fig, folder / f"roc_{evaluation.protocol}.png"))

    fig, ax = plt.subplots(figsize=(6, 5))
    for label, scores in curves.items():
        precision, recall, _ = precision_recall_curve(y, scores)
        ax.plot(recall, precision, label=label, linewidth=2 if label == "modelo" else 1)
    ax.axhline(y.mean(), color="k", linestyle=":", linewidth=0.8)
    ax.set(xlabel="Recall", ylabel="Precisão", title=f"Precisão × recall ({title})")
    ax.legend(fontsize=7)
    paths.append(_save(fig, folder / f"pr_{evaluation.protocol}.png"))

    fig, ax = plt.subplots(figsize=(6, 5))
    observed, predicted = calibration_curve(y, evaluation.y_score, n_bins=8, strategy="quantile")
    ax.plot(predicted, observed, "o-", label="modelo")
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="calibração perfeita")
    ax.set(
        xlabel="Probabilidade prevista",
        ylabel="Frequência observada de PV",
        title=f"Calibração ({title})",
    )
    ax.legend(fontsize=7)
    paths.append(_save(fig, folder / f"calibracao_{evaluation.protocol}.png"))
    plt.close("all")
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_backtest_plots(backtest: Backtest, folder: Path) -> list[Path]:
    """ROC-AUC per test year with its interval, model beside the baselines; and the
    reliability of the model's probabilities per year."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    labels = [year.label for year in backtest.years]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for offset, (name, label) in zip(
        np.linspace(-0.18, 0.18, len(NAMES)), NAMES.items(), strict=True
    ):
        figures = [year.figures(name)["roc_auc"] for year in backtest.years]
        values = np.array([f.value for f in figures])
        errors = np.array([[f.value - f.low, f.high - f.value] for f in figures]).T
        ax.errorbar(
            x + offset,
            values,
            yerr=np.nan_to_num(errors),
            fmt="o-" if name == MODEL else "s:",
            linewidth=2 if name == MODEL else 1,
            capsize=3,
            label=label,
        )
    ax.set(xticks=x, xticklabels=labels, ylabel="ROC-AUC (IC 95%)", title="Backtest por ano")
    ax.legend(fontsize=7)
    paths = [_save(fig, folder / "backtest_roc_auc.png")]

    fig, ax = plt.subplots(figsize=(6, 5))
    for year in backtest.years:
        points = year.as_dict()["confiabilidade"]
        ax.plot(
            [p["prob_media"] for p in points],
            [p["taxa_real"] for p in points],
            "o-",
            label=f"{year.label} (Brier {year.figures()['brier'].value:.3f})",
        )
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="calibração perfeita")
    ax.set(
        xlabel="Probabilidade prevista (média do grupo)",
        ylabel="Taxa real de PV",
        title="Confiabilidade por ano do backtest",
    )
    ax.legend(fontsize=7)
    paths.append(_save(fig, folder / "backtest_confiabilidade.png"))
    plt.close("all")
    return paths


def _fmt(value: float | None) -> str:
    return "—" if value is None or np.isnan(value) else f"{value:.3f}"


def _signed(interval: Interval) -> str:
    return (
        f"{interval.value:+.3f} (IC 95% {interval.low:+.3f} a {interval.high:+.3f})"
        if np.isfinite(interval.low)
        else f"{interval.value:+.3f} (sem intervalo)"
    )


VERDICT_WORDS: Final = {SUPERA: "supera", EMPATA: "empata com", PERDE: "perde para"}
_DECIMAL_POINT: Final = re.compile(r"(?<=\d)\.(?=\d)")


def decimal_comma(text: str) -> str:
    """Plain-Portuguese sentences write 0,747, not 0.747 (tables keep the point)."""
    return _DECIMAL_POINT.sub(",", text)


def comparison_phrase(baseline: str, comparison: Comparison) -> str:
    difference = _signed(comparison.difference)
    return f"{VERDICT_WORDS[comparison.verdict]} {BASELINES[baseline]} ({difference})"


def verdict_sentence(evaluation: Evaluation) -> str:
    """The model against every baseline on ROC-AUC, decided by the paired interval."""
    verdicts = evaluation.verdicts()
    auc = evaluation.paired().figures("modelo")["roc_auc"]
    parts = [comparison_phrase(name, c) for name, c in verdicts.items()]
    sentence = f"O modelo (ROC-AUC {auc.text()}) " + "; ".join(parts) + "."
    lost = [BASELINES[n] for n, c in verdicts.items() if c.verdict == PERDE]
    tied = [BASELINES[n] for n, c in verdicts.items() if c.verdict == EMPATA]
    if lost:
        sentence += " Atenção: uma referência simples é melhor; prefira-a."
    elif tied:
        sentence += (
            " Onde empata, a diferença cabe no acaso: não há ganho demonstrado sobre "
            + ", ".join(tied)
            + "."
        )
    return decimal_comma(sentence)


def newest_year_statement(backtest: Backtest) -> str:
    """The sentence the README, the card and the dashboard repeat: the newest checkable year
    against INDE_t alone, in plain Portuguese."""
    year = backtest.newest
    model, inde = year.figures()["roc_auc"], year.figures("inde_t")["roc_auc"]
    comparison = year.comparison("inde_t")
    head = (
        f"No ano mais recente que dá para conferir ({year.label}), o modelo "
        f"{VERDICT_WORDS[comparison.verdict]} o INDE_t sozinho: ROC-AUC {model.text()} × "
        f"{inde.text()}; diferença {_signed(comparison.difference)}."
    )
    if comparison.verdict == SUPERA:
        return decimal_comma(head)
    if comparison.verdict == PERDE:
        return decimal_comma(
            head + " Ordenar os alunos só pelo INDE seria melhor do que usar este modelo."
        )
    return decimal_comma(
        head + " O modelo não mostrou ganho sobre ordenar os alunos pelo INDE: use a lista "
        "como apoio, sabendo que ela ordena praticamente como o INDE."
    )


def _interval_cell(interval: Interval) -> str:
    return interval.text() if np.isfinite(interval.value) else "—"


def backtest_table(backtest: Backtest) -> str:
    """Markdown: one row per test year and model/baseline, every figure with its interval."""
    rows = [
        "| Transição | n (com PV) | rótulos | modelo | ROC-AUC | PR-AUC | Brier | recall top 15% "
        "| recall top 25% |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for year in backtest.years:
        origins = ", ".join(f"{n} {o}" for o, n in sorted(year.label_origins.items()))
        for name, label in NAMES.items():
            figures = year.figures(name)
            who = f"**{year.kind}**" if name == MODEL else label
            cells = " | ".join(_interval_cell(figures[m]) for m in INTERVAL_METRICS)
            rows.append(
                f"| {year.label} | {year.n} ({year.positives}) | {origins} | {who} | {cells} |"
            )
    return "\n".join(rows)


def comparison_table(backtest: Backtest) -> str:
    rows = [
        "| Transição | " + " | ".join(f"vs {label}" for label in BASELINES.values()) + " |",
        "|---|" + "---|" * len(BASELINES),
    ]
    for year in backtest.years:
        cells = []
        for name in BASELINES:
            comparison = year.comparison(name)
            cells.append(f"{comparison.verdict}: {_signed(comparison.difference)}")
        rows.append(f"| {year.label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def rates_table(backtest: Backtest) -> str:
    rows = [
        "| Transição | limiar | taxa prevista | taxa real | diferença | ROC-AUC estimado antes dos "
        "resultados | ROC-AUC realizado | erro da estimativa |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for year in backtest.years:
        estimated, realised = year.estimated["roc_auc"], year.figures()["roc_auc"]
        gap = year.predicted_rate() - year.real_rate
        rows.append(
            f"| {year.label} | {year.thresholds[MODEL]:.3f} | {year.predicted_rate():.1%} | "
            f"{year.real_rate:.1%} | {gap * 100:+.1f} p.p. | {estimated.text()} | "
            f"{realised.text()} | {estimated.value - realised.value:+.3f} |"
        )
    return "\n".join(rows)


def backtest_text(backtest: Backtest) -> str:
    """The per-year table for the terminal (`passos-magicos backtest`)."""
    header = (
        f"{'transição':<11} {'n':>4} {'PV':>4} {'rótulos':<10} {'modelo':<20} "
        f"{'ROC-AUC [IC 95%]':<22} {'PR-AUC [IC 95%]':<22} {'Brier [IC 95%]':<22} "
        f"{'recall top15%':<22} {'recall top25%':<22}"
    )
    short = {MODEL: "", "inde_t": "INDE_t", "ipv_t": "IPV_t", "logistica_simples": "log. simples"}
    lines = [header, "-" * len(header)]
    for year in backtest.years:
        origins = "+".join(sorted(year.label_origins))
        for name in NAMES:
            figures = year.figures(name)
            who = year.kind if name == MODEL else short[name]
            cells = " ".join(f"{figures[m].text():<22}" for m in INTERVAL_METRICS)
            lines.append(
                f"{year.label:<11} {year.n:>4} {year.positives:>4} {origins:<10} {who:<20} {cells}"
            )
        verdicts = "; ".join(
            f"{short[name]} {year.comparison(name).verdict} "
            f"({year.comparison(name).difference.value:+.3f} "
            f"[{year.comparison(name).difference.low:+.3f}; "
            f"{year.comparison(name).difference.high:+.3f}])"
            for name in BASELINES
        )
        estimated = year.estimated["roc_auc"]
        lines += [
            f"{'':<11} modelo − referência (ROC-AUC): {verdicts}",
            f"{'':<11} taxa prevista {year.predicted_rate():.1%} (real {year.real_rate:.1%}); "
            f"ROC-AUC estimado antes dos resultados {estimated.text()} "
            f"(erro {estimated.value - year.figures()['roc_auc'].value:+.3f})",
        ]
    lines += ["", newest_year_statement(backtest)]
    return "\n".join(lines)


def _metrics_table(evaluation: Evaluation) -> str:
    names = ["modelo", *(BASELINES[b] for b in evaluation.baselines)]
    rows = [
        "| Métrica | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label in METRIC_LABELS.items():
        values = [evaluation.model.get(key), *(m.get(key) for m in evaluation.baselines.values())]
        rows.append(f"| {label} | " + " | ".join(_fmt(v) for v in values) + " |")
    return "\n".join(rows)


def write_card(model_name: str, outcome: TrainOutcome, gate_summary: str | None = None) -> str:
    """The pt-BR model card of a run (kept on the outcome; rewritten once the gate decided)."""
    outcome.model_card = model_card(model_name, outcome, gate_summary)
    return outcome.model_card


def _label_lines(outcome: TrainOutcome) -> list[str]:
    report = outcome.dataset.report
    lines = [
        "- Rótulo: PV do ciclo *t+1*. Onde o arquivo não traz o PV oficial (2023 e 2024), ele é "
        "**derivado** pela regra da PEDE: PV = IPV ≥ média + 1 desvio-padrão (ddof=1) do IPV dos "
        "alunos avaliados no ciclo (fases 0-7). O rótulo oficial sempre prevalece, e cada rótulo "
        "guarda a sua origem (`oficial` / `derivado`)."
        if report.derived_labels
        else "- Rótulo: PV oficial do ciclo *t+1* (rótulos derivados desligados: "
        "PV_DERIVED_LABELS=false).",
    ]
    for rule in report.pv_rule:
        if rule.limiar is None:
            continue
        check = (
            f"; reproduz {rule.concordam} de {rule.concordam + rule.discordam} rótulos oficiais"
            if rule.oficiais
            else ""
        )
        derived = f"; {rule.derivados} rótulos derivados" if rule.derivados else ""
        lines.append(
            f"  - {rule.ano}: limiar {rule.limiar:.3f} sobre {rule.avaliados} avaliados{check}"
            f"{derived}"
        )
    return lines


def model_card(model_name: str, outcome: TrainOutcome, gate_summary: str | None = None) -> str:
    data, report = outcome.dataset, outcome.dataset.report
    transitions = outcome.transitions
    lines = [
        f"# Cartão do modelo — {model_name}" + (f" v{outcome.version}" if outcome.version else ""),
        "",
        "## Para que serve",
        "Estimar, a partir do registro de um aluno no ciclo *t* da PEDE, a probabilidade de ele "
        "atingir o **Ponto de Virada (PV) no ciclo seguinte** (*t+1*), para que a equipe "
        "pedagógica e de psicologia planeje o acompanhamento. É um apoio à decisão: não "
        "substitui a avaliação da equipe, nem deve ser usado para excluir alunos de atividades.",
        "",
    ]
    if outcome.backtest is not None:
        lines += ["## Em palavras simples", newest_year_statement(outcome.backtest), ""]
    lines += [
        "## Dados",
        f"- Digest (sha256) do conjunto: `{data.digest}`",
    ]
    lines += [f"- Arquivo `{f.name}` ({f.kind}), sha256 `{f.sha256[:16]}…`" for f in report.files]
    lines.append(
        "- Registros utilizáveis por ano: "
        + ", ".join(f"{y}: {n}" for y, n in sorted(report.rows_by_year.items()))
    )
    transition_parts = []
    for year in transitions.years:
        part = transitions.in_year(year)
        origins = part.label_origins()
        derived = origins.get(PV_DERIVADO, 0)
        note = f", rótulos derivados: {derived}" if derived else ", rótulos oficiais"
        transition_parts.append(
            f"{year - 1}→{year}: {len(part)} ({part.y.mean():.1%} com PV{note})"
        )
    lines.append("- Transições rotuladas (t→t+1, mesmo aluno): " + "; ".join(transition_parts))
    lines += _label_lines(outcome)
    dropped = report.dropped_by_reason()
    if dropped:
        lines.append(
            "- Linhas descartadas: "
            + "; ".join(f"{DROP_REASONS[k]}: {v}" for k, v in sorted(dropped.items()))
        )
    lines += [
        "",
        "## Modelo",
        f"- Tipo: `{outcome.kind}`"
        + (f", escolhido por {outcome.selection.describe()}" if outcome.selection else ""),
        f"- Regra de escolha: {SELECTION_RULE}",
        "- Entradas do modelo registrado (somente o que se sabe no ciclo t): "
        + ", ".join(f"`{f}`" for f in outcome.classifier.features)
        + (
            " — o `compact_logistic` usa destas só INDE, IPV, IDA, IEG e PV do ciclo t."
            if outcome.kind == "compact_logistic"
            else ""
        ),
        "- Pré-processamento dentro do modelo: variações desde t−1, imputação pela mediana com "
        "indicador de ausência, pedra pela ordem das faixas.",
        "- Probabilidades calibradas (Platt) em previsões fora da amostra, agrupadas por aluno.",
        f"- `pv_previsto` (limiar **{outcome.classifier.threshold:.3f}**, definido no ciclo "
        f"{outcome.classifier.metadata.get('threshold_cycle', '—')}): {LABEL_RULE}.",
        "",
    ]
    if outcome.backtest is not None:
        backtest = outcome.backtest
        lines += [
            "## Backtest por ano (origem móvel)",
            "Para cada transição de teste, tudo — a escolha do `auto`, o modelo, a calibração, o "
            "limiar e as referências — foi ajustado só nas transições anteriores. Entre "
            f"colchetes, o intervalo de 95% por bootstrap ({backtest.replicates} réplicas, "
            "reamostrando alunos).",
            "",
            backtest_table(backtest),
            "",
            "### Modelo menos referência (ROC-AUC, bootstrap pareado)",
            '"supera" só quando o intervalo da diferença exclui o zero; senão "empata".',
            "",
            comparison_table(backtest),
            "",
            "### Taxa prevista, calibração e desempenho estimado",
            "O desempenho estimado usa só as probabilidades calibradas do ciclo (antes de "
            "conhecer os resultados, no espírito do CBPE do NannyML).",
            "",
            rates_table(backtest),
            "",
        ]
    if outcome.fairness is not None:
        lines += card_lines(outcome.fairness)
    else:
        lines += [
            "## Equidade",
            "Sem backtest (uma só transição rotulada), não há relatório de equidade por grupo: "
            "ele precisa de pelo menos três ciclos com PV.",
            "",
        ]
    for evaluation in outcome.evaluations.values():
        title = "Ano mais recente" if evaluation.protocol == "out_of_time" else "CV agrupada"
        lines += [
            f"## {title} — {evaluation.description}",
            f"{evaluation.n_test} exemplos de teste, {evaluation.positive_rate:.1%} com PV.",
            "",
            _metrics_table(evaluation),
            "",
            verdict_sentence(evaluation),
            "",
        ]
    if outcome.backtest is None:
        lines += [
            "Só há uma transição rotulada nos dados: não há backtest; os números acima vêm "
            "apenas da validação cruzada agrupada por aluno.",
            "",
        ]
    if gate_summary:
        lines += ["## Portão de qualidade", gate_summary, ""]
    lines += [
        "## Limites",
        "- Poucos dados: de 450 a 700 transições por par de anos e 11-16% de positivos; um "
        "ROC-AUC tem erro-padrão perto de 0,02-0,03. Leia os intervalos, não só os pontos.",
        "- Os rótulos de 2023 e 2024 são derivados pela regra do IPV (conferida em 2020-2022); "
        "se a PEDE mudar o critério, o que o modelo prevê muda.",
        "- Padrões de um ano não se repetem necessariamente no seguinte (nos dados reais, o PV "
        "das fases mais altas muda muito de um ano para o outro): por isso o backtest avalia cada "
        "ano só com o que se sabia antes dele.",
        "- A fase 8 (universitários) não tem avaliação de PV e fica fora do modelo.",
        "- Gênero não é usado como entrada (atributo sensível, ausente no arquivo 2020-2022).",
        "- O PV do mesmo ano, o IPV, o INDE e a pedra do ciclo *t+1* nunca são entradas: "
        "seriam a própria resposta.",
    ]
    return "\n".join(lines) + "\n"
