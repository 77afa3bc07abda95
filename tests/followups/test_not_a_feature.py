"""Follow-ups are never model features: a model that learned from them would learn the team's
own choices (whom it decided to follow up) and feed them back as predictions.

Guarded three ways: no model input and no column of the feature stores is a follow-up field;
no module of the data → features → training → feature store path imports the follow-up
package or names its store; importing the fitting path does not load it. (The e2e flow in
tests/e2e/test_followup_outcome_flow.py also checks the served model's features after
follow-ups were recorded.)"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from passos_magicos.feature_store.online import CONTEXT_COLUMNS
from passos_magicos.features import KEY_COLUMNS, LABEL, LABEL_ORIGIN, MODEL_INPUTS
from passos_magicos.followups.store import FOLLOWUPS

SRC = Path(__file__).resolve().parents[2] / "src" / "passos_magicos"
MODEL_PATH = [SRC / "features.py", SRC / "data", SRC / "training", SRC / "feature_store"]
# Identifying columns both sides share; everything else of a follow-up is off limits.
SHARED_KEYS = {"aluno_id", "ciclo"}
FOLLOWUP_FIELDS = set(FOLLOWUPS.c.keys()) - SHARED_KEYS
FORBIDDEN_WORDS = ("acompanh", "followup", "follow_up")


def python_files() -> list[Path]:
    files: list[Path] = []
    for root in MODEL_PATH:
        files.extend([root] if root.is_file() else sorted(root.rglob("*.py")))
    return files


def test_no_model_input_or_store_column_is_a_follow_up_field() -> None:
    columns = {*MODEL_INPUTS, *CONTEXT_COLUMNS, *KEY_COLUMNS, LABEL, LABEL_ORIGIN}
    assert not columns & FOLLOWUP_FIELDS
    assert not [c for c in columns if any(w in c.lower() for w in FORBIDDEN_WORDS)]
    assert {"tipo", "status", "autor", "nota", "data"} <= FOLLOWUP_FIELDS  # the guard sees them


def test_the_model_path_never_imports_or_names_the_follow_up_store() -> None:
    offenders = []
    for path in python_files():
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}: import {n}" for n in names if "followups" in n]
        for word in ("followups_store_url", "FOLLOWUPS_STORE_URL", "cycle_followups"):
            if word in text:
                offenders.append(f"{path.name}: {word}")
    assert not offenders, offenders
    assert len(python_files()) > 20  # the scan really covers the model path


def test_importing_the_fitting_path_does_not_load_follow_ups() -> None:
    modules = [
        "passos_magicos.features",
        "passos_magicos.data.dataset",
        "passos_magicos.training.evaluation",
        "passos_magicos.training.models",
        "passos_magicos.training.selection",
        "passos_magicos.feature_store.materialize",
        "passos_magicos.feature_store.online",
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if 'followups' in m))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout
