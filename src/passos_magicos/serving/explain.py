"""Why a prediction is high or low: each factor is compared with a typical student.

For every input (or group of inputs), the probability is recomputed with that input set to the
training median (the history: as if there were no previous cycle). The difference is how much
that input moved this student's probability. It works the same for every model kind and costs
one extra batch of ~15 rows through the compiled model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from passos_magicos.data.schema import PEDRAS
from passos_magicos.features import CURRENT_NUMERIC, MODEL_INPUTS
from passos_magicos.serving.compiled import Array, IntArray

LABELS: Final = {
    "fase": "fase",
    "idade": "idade",
    "anos_pm": "anos no programa",
    "inde": "INDE (índice de desenvolvimento)",
    "iaa": "IAA (autoavaliação)",
    "ieg": "IEG (engajamento)",
    "ips": "IPS (psicossocial)",
    "ipp": "IPP (psicopedagógico)",
    "ida": "IDA (desempenho acadêmico)",
    "ipv": "IPV (ponto de virada)",
    "ian": "IAN (adequação de nível)",
    "pv": "ponto de virada no ciclo atual",
    "pedra": "pedra",
    "historico": "evolução desde o ciclo anterior",
}
MIN_IMPACT: Final = 0.005  # below half a percentage point a factor is noise
TOP_FACTORS: Final = 5
_PREVIOUS: Final = np.asarray(
    [MODEL_INPUTS.index(n) for n in MODEL_INPUTS if n.endswith("_anterior")], dtype=np.intp
)


Factor = dict[str, Any]  # the `Fator` body of the API: fator, descricao, valor, … texto


Shown = float | str | None


def _text(name: str, label: str, value: Shown, ref: Shown, impact: float) -> str:
    pontos = abs(impact) * 100
    verbo = "aumenta" if impact > 0 else "diminui"
    if name == "historico":
        return f"A {label} {verbo} a chance em {pontos:.0f} ponto(s) percentual(is)."
    return (
        f"{label[0].upper()}{label[1:]} = {_show(value)} (típico: "
        f"{_show(ref)}) {verbo} a chance em {pontos:.0f} ponto(s) percentual(is)."
    )


def _show(value: Shown) -> str:
    if value is None:
        return "não informado"
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    return str(value)


class Explainer:
    """Reference values: the model's own imputation medians (the typical student)."""

    def __init__(
        self, predict: Callable[[Array], Array], medians: Array, pedra_median: float
    ) -> None:
        self.predict = predict
        self.groups: list[tuple[str, IntArray, Array]] = []
        for i, name in enumerate(CURRENT_NUMERIC):
            column = MODEL_INPUTS.index(name)
            self.groups.append((name, np.asarray([column]), np.asarray([medians[i]])))
        pedra = np.asarray([np.round(pedra_median)])
        self.groups.append(("pedra", np.asarray([MODEL_INPUTS.index("pedra")]), pedra))
        self.groups.append(("historico", _PREVIOUS, np.full(len(_PREVIOUS), np.nan)))
        # Row 0 is the student; row k has group k's columns set to its reference: a mask and
        # the references, so that all the variants are built in one np.where.
        block, width = len(self.groups) + 1, len(MODEL_INPUTS)
        self._mask = np.zeros((block, width), dtype=bool)
        self._reference = np.zeros((block, width))
        for k, (_, columns, reference) in enumerate(self.groups, start=1):
            self._mask[k, columns] = True
            self._reference[k, columns] = reference
        # What each factor shows besides the row's own value: computed once.
        self._shown: list[tuple[str, str, int | None, float | str | None]] = []
        for name, columns, reference in self.groups:
            shown_column: int | None = None if name == "historico" else int(columns[0])
            ref: float | str | None = None
            if name == "pedra":
                ref = _pedra(reference[0])
            elif name != "historico":
                ref = float(reference[0])
            self._shown.append((name, LABELS[name], shown_column, ref))

    def predict_and_explain(self, raw: Array) -> tuple[Array, list[list[Factor]]]:
        """Probabilities and top factors of each row, in one call of the model: each row is
        followed by its variants (one input set to the reference value per variant)."""
        n, block = len(raw), len(self.groups) + 1
        variants = np.where(self._mask, self._reference, raw[:, None, :])
        variants = variants.reshape(n * block, raw.shape[1])
        if n == 1:  # the request path: a dozen floats sort faster in Python than in numpy
            own, *others = self.predict(variants).tolist()
            impacts_row = [own - other for other in others]
            # Stable, like numpy's sort of so few values (an insertion sort).
            order = sorted(range(len(impacts_row)), key=lambda k: -abs(impacts_row[k]))
            top = self._top(raw[0].tolist(), impacts_row, order[:TOP_FACTORS])
            return np.asarray([own]), [top]
        scores = self.predict(variants).reshape(n, block)
        probabilities = scores[:, 0].copy()
        impacts = scores[:, :1] - scores[:, 1:]
        # Largest first: the same sort (numpy's default) as before, applied to every row at once.
        orders = (-np.abs(impacts)).argsort(axis=1)[:, :TOP_FACTORS].tolist()
        return probabilities, [
            self._top(raw_row, row_impacts, order)
            for raw_row, row_impacts, order in zip(
                raw.tolist(), impacts.tolist(), orders, strict=True
            )
        ]

    def _top(self, raw_row: list[float], impacts: list[float], order: list[int]) -> list[Factor]:
        factors = []
        for k in order:
            impact = impacts[k]
            if abs(impact) < MIN_IMPACT:
                break
            name, label, column, ref = self._shown[k]
            value: float | str | None = None
            if column is not None:
                own = raw_row[column]
                if not math.isnan(own):
                    value = _pedra(own) if name == "pedra" else own
            rounded = round(impact, 4)
            # The API's body, built once here (no intermediate object: five per request).
            factors.append(
                {
                    "fator": name,
                    "descricao": label,
                    "valor": value,
                    "referencia": ref,
                    "impacto": rounded,
                    "efeito": "aumenta" if impact > 0 else "diminui",
                    "texto": _text(name, label, value, ref, rounded),
                }
            )
        return factors


def _pedra(code: float) -> str | None:
    return None if np.isnan(code) else PEDRAS[int(code)]
