"""What a training run shows people: ROC, PR and calibration plots and a pt-BR model card."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from passos_magicos.data.dataset import DROP_REASONS
from passos_magicos.training.evaluation import BASELINES, Evaluation

if TYPE_CHECKING:
    from passos_magicos.training.outcome import TrainOutcome

METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "brier": "Brier (menor é melhor)",
    "precision": "Precisão no limiar",
    "recall": "Recall no limiar",
    "f1": "F1 no limiar",
    "recall_top15": "Recall nos 15% mais prováveis",
    "recall_top25": "Recall nos 25% mais prováveis",
}


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


def _fmt(value: float) -> str:
    return "—" if value is None or np.isnan(value) else f"{value:.3f}"


def _metrics_table(evaluation: Evaluation) -> str:
    names = ["modelo", *(BASELINES[b] for b in evaluation.baselines)]
    rows = [
        "| Métrica | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key, label in METRIC_LABELS.items():
        values = [evaluation.model[key], *(m[key] for m in evaluation.baselines.values())]
        rows.append(f"| {label} | " + " | ".join(_fmt(v) for v in values) + " |")
    return "\n".join(rows)


def verdict_sentence(evaluation: Evaluation) -> str:
    beaten = evaluation.beats_baselines
    lost = [BASELINES[name] for name, ok in beaten.items() if not ok]
    auc = evaluation.model["roc_auc"]
    if not lost:
        return f"O modelo (ROC-AUC {auc:.3f}) supera todas as referências simples."
    return (
        f"Atenção: o modelo (ROC-AUC {auc:.3f}) NÃO supera: {', '.join(lost)}. "
        "Use-o com cautela ou prefira a referência mais simples."
    )


def write_card(model_name: str, outcome: TrainOutcome, gate_summary: str | None = None) -> str:
    """The pt-BR model card of a run (kept on the outcome; rewritten once the gate decided)."""
    outcome.model_card = model_card(model_name, outcome, gate_summary)
    return outcome.model_card


def model_card(model_name: str, outcome: TrainOutcome, gate_summary: str | None = None) -> str:
    data, report = outcome.dataset, outcome.dataset.report
    counts = outcome.transitions.frame.groupby("ano_alvo")["pv_proximo"].agg(["size", "mean"])
    lines = [
        f"# Cartão do modelo — {model_name}" + (f" v{outcome.version}" if outcome.version else ""),
        "",
        "## Para que serve",
        "Estimar, a partir do registro de um aluno no ciclo *t* da PEDE, a probabilidade de ele "
        "atingir o **Ponto de Virada (PV) no ciclo seguinte** (*t+1*), para que a equipe "
        "pedagógica e de psicologia planeje o acompanhamento. É um apoio à decisão: não "
        "substitui a avaliação da equipe, nem deve ser usado para excluir alunos de atividades.",
        "",
        "## Dados",
        f"- Digest (sha256) do conjunto: `{data.digest}`",
    ]
    lines += [f"- Arquivo `{f.name}` ({f.kind}), sha256 `{f.sha256[:16]}…`" for f in report.files]
    lines += [
        "- Registros utilizáveis por ano: "
        + ", ".join(f"{y}: {n}" for y, n in sorted(report.rows_by_year.items())),
        "- Transições rotuladas (t→t+1, mesmo aluno): "
        + ", ".join(
            f"{y - 1}→{y}: {int(r['size'])} ({r['mean']:.1%} com PV)"
            for y, r in zip(counts.index.astype(int), counts.to_dict("records"), strict=True)
        ),
    ]
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
        + (
            " (escolhido pela validação cruzada agrupada por aluno: "
            + ", ".join(f"{k} {v:.3f}" for k, v in outcome.selection.items())
            + ")"
            if outcome.selection
            else ""
        ),
        "- Entradas (somente o que se sabe no ciclo t): "
        + ", ".join(f"`{f}`" for f in outcome.classifier.features),
        "- Pré-processamento dentro do modelo: variações desde t−1, imputação pela mediana com "
        "indicador de ausência, pedra pela ordem das faixas.",
        "- Probabilidades calibradas (Platt) em previsões fora da amostra, agrupadas por aluno.",
        f"- Limiar de decisão: **{outcome.classifier.threshold:.3f}** — regra: o corte que "
        "maximiza o F1 nas previsões fora da amostra do treino.",
        "",
        "## Desempenho (comparado às referências simples)",
    ]
    for evaluation in outcome.evaluations.values():
        lines += [
            "",
            f"### {'Fora do tempo' if evaluation.protocol == 'out_of_time' else 'CV agrupada'}"
            f" — {evaluation.description}",
            f"{evaluation.n_test} exemplos de teste, {evaluation.positive_rate:.1%} com PV.",
            "",
            _metrics_table(evaluation),
            "",
            verdict_sentence(evaluation),
        ]
    if "out_of_time" not in outcome.evaluations:
        lines += [
            "",
            "Só há uma transição rotulada nos dados: não há avaliação fora do tempo; os números "
            "acima vêm apenas da validação cruzada agrupada por aluno.",
        ]
    if gate_summary:
        lines += ["", "## Portão de qualidade", gate_summary]
    lines += [
        "",
        "## Limites",
        "- Poucos dados: cerca de 450 transições por par de anos e ~15% de positivos; as "
        "métricas têm incerteza de alguns centésimos.",
        "- O PV é definido a cada ano por um limiar sobre o IPV que muda de ano para ano "
        "(8,667 em 2020, 9,0 em 2021, 8,375 em 2022); um novo critério muda o que o modelo "
        "prevê.",
        "- Não há rótulos de PV depois de 2022: previsões para 2024→2025 extrapolam.",
        "- A fase 8 (universitários) não tem avaliação de PV e fica fora do modelo.",
        "- Gênero não é usado como entrada (atributo sensível, ausente no arquivo 2020-2022).",
        "- O PV do mesmo ano, o IPV, o INDE e a pedra do ciclo *t+1* nunca são entradas: "
        "seriam a própria resposta.",
    ]
    return "\n".join(lines) + "\n"
