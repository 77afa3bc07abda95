"""The registered model compiled to plain numpy for the request path.

sklearn's `predict_proba` on a one-row DataFrame costs milliseconds of validation and
DataFrame building; the same arithmetic on a float vector costs microseconds. At load the
fitted pipeline (changes since t−1, imputation, scaling, missing flags, pedra order, the
estimator, the Platt calibration) is turned into arrays, and the result is checked against
the registered model on a reference batch: any difference above 1e-6 and the runtime keeps
the sklearn path instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from passos_magicos.data.schema import PEDRAS
from passos_magicos.features import CURRENT_NUMERIC, HISTORY_FIELDS, MODEL_INPUTS, NUMERIC_INPUTS
from passos_magicos.training.models import (
    MISSING_FLAGGED,
    NUMERIC_COLUMNS,
    TRANSFORMED_FEATURES,
    PontoViradaClassifier,
)
from passos_magicos.training.packaging import conform_inputs

Array = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.intp]]

MAX_DIFFERENCE: Final = 1e-6
_CURRENT: Final = np.asarray([MODEL_INPUTS.index(n) for n in CURRENT_NUMERIC], dtype=np.intp)
_HISTORY: Final = np.asarray([MODEL_INPUTS.index(n) for n in HISTORY_FIELDS], dtype=np.intp)
_PREVIOUS: Final = np.asarray(
    [MODEL_INPUTS.index(f"{n}_anterior") for n in HISTORY_FIELDS], dtype=np.intp
)
PEDRA_CODE: Final = {pedra: float(i) for i, pedra in enumerate(PEDRAS)}
INPUT_INDEX: Final = {name: i for i, name in enumerate(MODEL_INPUTS)}
PEDRA_INDEX: Final = INPUT_INDEX["pedra"]
_ALL_INPUTS: Final = itemgetter(*MODEL_INPUTS)
# transform() gathers the current values, the history (minus the previous cycle's, below) and
# pedra in one take: NUMERIC_COLUMNS order, then pedra last.
_GATHER: Final = np.concatenate([_CURRENT, _HISTORY, [PEDRA_INDEX]]).astype(np.intp)
_DELTAS: Final = slice(len(_CURRENT), len(_CURRENT) + len(_HISTORY))
TREE_CHUNK_ROWS: Final = 256  # rows per traversal pass: its temporaries stay in the CPU cache
# Rows × nodes up to which deciding every node beats the level-by-level walk (measured: up to
# ~24 rows of a 150-tree, 1,700-node forest; a row's explanation, 12 variants, qualifies).
FEW_ROWS_NODES: Final = 40_000


class CompilationError(ValueError):
    """The fitted model has a shape this compiler does not know (the sklearn path is used)."""


def encode_inputs(records: list[dict[str, Any]]) -> Array:
    """Raw input records (canonical field names) → float matrix in MODEL_INPUTS order.

    Unknown keys are ignored; absent or None fields are NaN; pedra becomes its band index.
    Rows are read with one C-level getter when every field is present, and converted in a
    single cast (None → NaN): a 1,000-row batch in ~1.5 ms.
    """
    if not records:
        return np.full((0, len(MODEL_INPUTS)), np.nan)
    if len(records) == 1:  # the request path: plain floats, no object array
        get = records[0].get
        row = [get(name) for name in MODEL_INPUTS]
        pedra = row[PEDRA_INDEX]
        if pedra is not None:
            row[PEDRA_INDEX] = PEDRA_CODE.get(str(pedra), np.nan)
        return np.array([[np.nan if v is None else v for v in row]], dtype=np.float64)
    rows: list[tuple[Any, ...]] = []
    for record in records:
        try:
            rows.append(_ALL_INPUTS(record))
        except KeyError:
            get = record.get
            rows.append(tuple([get(name) for name in MODEL_INPUTS]))
    matrix = np.array(rows, dtype=object)
    matrix[:, PEDRA_INDEX] = [
        None if pedra is None else PEDRA_CODE.get(str(pedra), np.nan)
        for pedra in matrix[:, PEDRA_INDEX]
    ]
    return np.asarray(matrix.astype(np.float64))


def _sigmoid(x: Array) -> Array:
    """1 / (1 + exp(−x)), in one buffer (the same operations, without a temporary each)."""
    out = np.negative(x)
    np.exp(out, out=out)
    out += 1.0
    return np.asarray(np.divide(1.0, out, out=out))


_LOGIT_LIMIT: Final = float(np.log((1 - 1e-6) / 1e-6))  # logit of the clipped probabilities


def _logit(p: Array) -> Array:
    clipped = np.minimum(np.maximum(p, 1e-6), 1 - 1e-6)  # np.clip, without its Python layer
    out = np.subtract(1.0, clipped)
    np.divide(clipped, out, out=out)
    return np.asarray(np.log(out, out=out))


@dataclass(frozen=True)
class _Trees:
    """All trees of an ensemble in flat arrays; a leaf points to itself, so a fixed number of
    steps (the deepest tree's depth) takes every row of every tree to its leaf.

    Nodes are kept "doubled" (node i is 2i, and 2i+1 is the same node): the child to go to is
    then `children[node + went_right]` with no multiplication per step.

    A few rows (the request path) take another route: every node's decision for the row at
    once, then one gather per level (`_walk_few`, ~5 µs for one row of 150 trees instead of
    ~35 µs); it does work for every node, so many rows keep the level-by-level walk."""

    roots: IntArray  # doubled
    feature: IntArray  # per doubled node
    threshold: Array  # per doubled node
    children: IntArray  # children[2i] = 2·left(i), children[2i+1] = 2·right(i)
    value: Array  # per node (not doubled)
    depth: int
    float32_inputs: bool  # sklearn's decision trees compare float32 inputs
    # For `_walk_few`: per node (not doubled), and per (row, node) for up to `few_rows` rows.
    node_feature: IntArray
    node_threshold: Array
    few_rows: int
    few_roots: IntArray
    few_left: IntArray
    few_right: IntArray
    few_value: Array

    def leaf_values(self, X: Array) -> Array:  # noqa: N803
        """(rows, trees) leaf value of each row in each tree: a few rows by `_walk_few`, more
        level by level, every tree at once, in chunks of rows (a 1,000-row batch of 150 trees:
        150k walkers per level)."""
        data = X.astype(np.float32).astype(np.float64) if self.float32_inputs else X
        data = np.ascontiguousarray(data)
        if len(data) <= self.few_rows:
            return self._walk_few(data)
        if len(data) <= TREE_CHUNK_ROWS:
            return self._walk(data)
        parts = [
            self._walk(data[i : i + TREE_CHUNK_ROWS]) for i in range(0, len(data), TREE_CHUNK_ROWS)
        ]
        return np.concatenate(parts)

    def _walk_few(self, data: Array) -> Array:
        """Each node's next node for each row (a leaf's is itself), then `depth` gathers. The
        tables hold row r's nodes at r·nodes + i, so that no offset is added per call."""
        rows = len(data)
        goes_right = data.take(self.node_feature, axis=1) > self.node_threshold
        following = np.where(goes_right, self.few_right[:rows], self.few_left[:rows]).ravel()
        node = self.few_roots[:rows]
        for _ in range(self.depth):
            node = following.take(node)
        return np.asarray(self.few_value.take(node))

    def _walk(self, data: Array) -> Array:
        flat = data.ravel()
        row_start = (np.arange(len(data)) * data.shape[1])[:, None]
        node = np.repeat(self.roots[None, :], len(data), axis=0)
        feature, threshold, children = self.feature, self.threshold, self.children
        # np.take on flat arrays: the cheapest gather numpy has.
        for _ in range(self.depth):
            go_right = np.take(flat, row_start + np.take(feature, node)) > np.take(threshold, node)
            node = np.take(children, node + go_right)
        return np.asarray(np.take(self.value, node >> 1))


def _flatten(
    trees: list[tuple[IntArray, Array, IntArray, IntArray, Array, IntArray]],
    float32_inputs: bool,
) -> _Trees:
    """(feature, threshold, left, right, value, is_leaf) per tree → one flat node table."""
    offset = 0
    parts: dict[str, list[Any]] = {k: [] for k in ("f", "t", "l", "r", "v", "roots")}
    depth = 0
    for feature, threshold, left, right, value, is_leaf in trees:
        n = len(feature)
        own = np.arange(n) + offset
        parts["roots"].append(offset)
        parts["f"].append(np.where(is_leaf, 0, feature))
        parts["t"].append(np.where(is_leaf, np.inf, threshold))
        parts["l"].append(np.where(is_leaf, own, left + offset))
        parts["r"].append(np.where(is_leaf, own, right + offset))
        parts["v"].append(value)
        depth = max(depth, _depth(left, right, is_leaf))
        offset += n
    left = np.concatenate(parts["l"]).astype(np.intp)
    right = np.concatenate(parts["r"]).astype(np.intp)
    feature = np.concatenate(parts["f"]).astype(np.intp)
    threshold = np.concatenate(parts["t"]).astype(np.float64)
    children = 2 * np.stack([left, right], axis=1)
    value = np.concatenate(parts["v"]).astype(np.float64)
    nodes = len(value)
    few_rows = max(1, FEW_ROWS_NODES // nodes)
    row_offset = (np.arange(few_rows) * nodes)[:, None]
    return _Trees(
        roots=2 * np.asarray(parts["roots"], dtype=np.intp),
        feature=np.repeat(feature, 2),
        threshold=np.repeat(threshold, 2),
        children=children.astype(np.intp).ravel(),
        value=value,
        depth=depth,
        float32_inputs=float32_inputs,
        node_feature=feature,
        node_threshold=threshold,
        few_rows=few_rows,
        few_roots=np.asarray(parts["roots"], dtype=np.intp) + row_offset,
        few_left=left + row_offset,
        few_right=right + row_offset,
        few_value=np.tile(value, few_rows),
    )


def _depth(left: IntArray, right: IntArray, is_leaf: IntArray) -> int:
    deepest, stack = 0, [(0, 0)]
    while stack:
        node, level = stack.pop()
        if is_leaf[node]:
            deepest = max(deepest, level)
        else:
            stack += [(int(left[node]), level + 1), (int(right[node]), level + 1)]
    return deepest


@dataclass(frozen=True)
class CompiledModel:
    """Float matrix of raw inputs (MODEL_INPUTS order) → calibrated probability."""

    kind: str
    medians: Array  # imputation values for NUMERIC_COLUMNS
    center: Array | None  # StandardScaler mean / scale (linear model only)
    scale: Array | None
    pedra_median: float
    pedra_center: float
    pedra_scale: float
    missing_columns: IntArray  # positions in NUMERIC_COLUMNS flagged when missing
    linear: tuple[Array, float] | None
    trees: _Trees | None
    tree_mode: str  # "mean" (forest) or "sum" (boosting)
    tree_offset: float
    calibration: tuple[float, float]
    threshold: float
    # (fill, center, scale) over NUMERIC_COLUMNS + pedra, derived from the fields above.
    _columns: tuple[Array, Array | None, Array] = field(init=False, repr=False, compare=False)
    # Linear model with its scaling and missing flags folded in: (per value, per missing
    # value, constant), so that log-odds = filled·a + missing·m + c (see `_linear_log_odds`).
    _folded: tuple[Array, Array, float] | None = field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        fill = np.append(self.medians, self.pedra_median)
        center: Array | None = None
        scale = np.ones(len(fill))
        if self.center is not None and self.scale is not None:
            center = np.append(self.center, self.pedra_center)
            scale = np.append(self.scale, self.pedra_scale)
        object.__setattr__(self, "_columns", (fill, center, scale))
        if self.linear is not None:
            weights, intercept = self.linear
            values = len(fill)  # the transform's columns: values[:-1], flags, pedra
            flags = len(self.missing_columns)
            per_value = np.append(weights[: values - 1], weights[-1]) / scale
            per_missing = np.zeros(values)
            np.add.at(per_missing, self.missing_columns, weights[values - 1 : values - 1 + flags])
            shift = 0.0 if center is None else float(center @ per_value)
            object.__setattr__(self, "_folded", (per_value, per_missing, intercept - shift))

    def transform(self, raw: Array) -> Array:
        """Raw inputs → the estimator's columns (values, missing flags, pedra), with as few
        numpy calls as possible: on the request path each costs about a microsecond."""
        values = raw.take(_GATHER, axis=1)  # current, history, pedra
        values[:, _DELTAS] -= raw.take(_PREVIOUS, axis=1)  # history → change since t−1
        missing = np.isnan(values)
        flags = missing.take(self.missing_columns, axis=1)  # 0/1 once concatenated below
        values = np.where(missing, self._fill, values)
        if self._center is not None:
            values = (values - self._center) / self._scale
        return np.concatenate([values[:, :-1], flags, values[:, -1:]], axis=1, dtype=np.float64)

    @property
    def _fill(self) -> Array:
        return self._columns[0]

    @property
    def _center(self) -> Array | None:
        return self._columns[1]

    @property
    def _scale(self) -> Array:
        return self._columns[2]

    def log_odds(self, raw: Array) -> Array:
        """The estimator's score as the calibrator reads it: logit of its probability clipped to
        [1e-6, 1 − 1e-6]. A linear model or boosting has the log-odds already: clipping them is
        the same, without the sigmoid and logit round trip (9 numpy calls fewer per request)."""
        if self._folded is not None:
            return self._linear_log_odds(raw, *self._folded)
        X = self.transform(raw)  # noqa: N806
        if self.trees is None:
            raise CompilationError("modelo compilado sem estimador")
        leaves = self.trees.leaf_values(X)
        if self.tree_mode == "mean":
            return _logit(np.asarray(leaves.mean(axis=1)))
        margin = leaves.sum(axis=1)
        margin += self.tree_offset
        return np.asarray(np.clip(margin, -_LOGIT_LIMIT, _LOGIT_LIMIT, out=margin))

    def _linear_log_odds(
        self, raw: Array, per_value: Array, per_missing: Array, constant: float
    ) -> Array:
        """`transform` then the weights, in half the numpy calls: the scaling and the missing
        flags are in the folded weights."""
        values = raw.take(_GATHER, axis=1)
        values[:, _DELTAS] -= raw.take(_PREVIOUS, axis=1)
        missing = np.isnan(values)
        margin = np.where(missing, self._fill, values) @ per_value
        margin += missing @ per_missing
        margin += constant
        return np.asarray(np.clip(margin, -_LOGIT_LIMIT, _LOGIT_LIMIT, out=margin))

    def predict_proba(self, raw: Array) -> Array:
        slope, intercept = self.calibration
        z = self.log_odds(raw)
        z *= slope
        z += intercept
        return _sigmoid(z)


def compile_classifier(classifier: PontoViradaClassifier) -> CompiledModel:
    if tuple(classifier.features) != MODEL_INPUTS:
        raise CompilationError("entradas do modelo diferentes das esperadas")
    steps = classifier.pipeline.named_steps
    columns = steps["prep"].named_steps["columns"]
    values_pipe = columns.named_transformers_["values"]
    pedra_pipe = columns.named_transformers_["pedra"]
    imputer = values_pipe.steps[0][1]
    scaler = values_pipe.steps[1][1] if len(values_pipe.steps) > 1 else None
    pedra_imputer = pedra_pipe.steps[1][1]
    pedra_scaler = pedra_pipe.steps[2][1] if len(pedra_pipe.steps) > 2 else None
    if tuple(columns.transformers_[0][2]) != NUMERIC_COLUMNS:
        raise CompilationError("colunas numéricas fora da ordem esperada")
    model = steps["model"]
    linear, trees, tree_mode, tree_offset = None, None, "mean", 0.0
    if isinstance(model, LogisticRegression):
        weights = np.asarray(model.coef_[0], dtype=np.float64)
        if "select" in steps:  # a model on some of the columns: the others weigh zero
            full = np.zeros(len(TRANSFORMED_FEATURES))
            full[steps["select"].indices] = weights
            weights = full
        linear = (weights, float(model.intercept_[0]))
    elif "select" in steps:
        raise CompilationError("seleção de colunas só é compilada para modelos lineares")
    elif isinstance(model, RandomForestClassifier):
        trees = _flatten([_sklearn_tree(t.tree_) for t in model.estimators_], float32_inputs=True)
    elif isinstance(model, HistGradientBoostingClassifier):
        trees = _flatten([_hgb_tree(p[0].nodes) for p in model._predictors], float32_inputs=False)
        tree_mode, tree_offset = "sum", float(np.ravel(model._baseline_prediction)[0])
    else:
        raise CompilationError(f"estimador não suportado: {type(model).__name__}")
    scaled = isinstance(scaler, StandardScaler)
    pedra_scaled = isinstance(pedra_scaler, StandardScaler)
    calibrator = classifier.calibrator
    return CompiledModel(
        kind=classifier.kind,
        medians=np.asarray(imputer.statistics_, dtype=np.float64),
        center=np.asarray(scaler.mean_) if scaled else None,  # type: ignore[union-attr]
        scale=np.asarray(scaler.scale_) if scaled else None,  # type: ignore[union-attr]
        pedra_median=float(pedra_imputer.statistics_[0]),
        pedra_center=float(pedra_scaler.mean_[0]) if pedra_scaled else 0.0,  # type: ignore[union-attr]
        pedra_scale=float(pedra_scaler.scale_[0]) if pedra_scaled else 1.0,  # type: ignore[union-attr]
        missing_columns=np.asarray(
            [NUMERIC_COLUMNS.index(n) for n in MISSING_FLAGGED], dtype=np.intp
        ),
        linear=linear,
        trees=trees,
        tree_mode=tree_mode,
        tree_offset=tree_offset,
        calibration=(float(calibrator.coef_[0][0]), float(calibrator.intercept_[0])),
        threshold=float(classifier.threshold),
    )


def _sklearn_tree(tree: Any) -> tuple[IntArray, Array, IntArray, IntArray, Array, IntArray]:
    value = tree.value[:, 0, :]
    positive = value[:, 1] / value.sum(axis=1)  # fractions (sklearn ≥ 1.4) or counts
    is_leaf = (tree.children_left == -1).astype(np.intp)
    return tree.feature, tree.threshold, tree.children_left, tree.children_right, positive, is_leaf


def _hgb_tree(nodes: Any) -> tuple[IntArray, Array, IntArray, IntArray, Array, IntArray]:
    if np.any(nodes["is_categorical"]):
        raise CompilationError("árvores com variáveis categóricas não são suportadas")
    return (
        nodes["feature_idx"].astype(np.intp),
        nodes["num_threshold"].astype(np.float64),
        nodes["left"].astype(np.intp),
        nodes["right"].astype(np.intp),
        nodes["value"].astype(np.float64),
        nodes["is_leaf"].astype(np.intp),
    )


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain dicts, NaN as None (what a JSON request would carry)."""
    clean = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict("records")]


def reference_batch(size: int = 256, seed: int = 20240601) -> pd.DataFrame:
    """Made-up students covering the input space (missing fields included), never real rows."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.uniform(0, 10, size=(size, len(NUMERIC_INPUTS))),
        columns=list(NUMERIC_INPUTS),
    )
    frame["fase"] = rng.integers(0, 8, size=size).astype(float)
    frame["idade"] = rng.uniform(6, 22, size=size)
    frame["anos_pm"] = rng.integers(0, 8, size=size).astype(float)
    for column in ("pv", "pv_anterior"):
        frame[column] = rng.integers(0, 2, size=size).astype(float)
    optional = [c for c in NUMERIC_INPUTS if c.endswith("_anterior")] + [
        "idade",
        "anos_pm",
        "pv",
    ]
    for column in optional:
        frame.loc[rng.random(size) < 0.3, column] = np.nan
    history_missing = rng.random(size) < 0.4
    frame.loc[history_missing, [c for c in NUMERIC_INPUTS if c.endswith("_anterior")]] = np.nan
    frame["pedra"] = rng.choice(np.asarray([*PEDRAS, None], dtype=object), size=size)
    return frame[list(MODEL_INPUTS)]


def largest_difference(compiled: CompiledModel, classifier: PontoViradaClassifier) -> float:
    """How far the compiled model is from the registered one on the reference batch, scored
    whole and in the request path's shapes (one row, a few rows: another tree walk)."""
    batch = reference_batch()
    expected = classifier.predict_proba(conform_inputs(batch, classifier.features))
    records = frame_records(batch)
    whole = compiled.predict_proba(encode_inputs(records))
    singles = [compiled.predict_proba(encode_inputs(records[i : i + 1])) for i in range(16)]
    few = compiled.predict_proba(encode_inputs(records[16:28]))
    actual = np.concatenate([np.concatenate(singles), few])
    return float(max(np.max(np.abs(expected - whole)), np.max(np.abs(expected[:28] - actual))))
