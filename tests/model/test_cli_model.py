"""`rescue model evaluate` on small synthetic CSVs: the JSON contract and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli.main import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _csv(tmp_path: Path, n: int = 240, *, label_values: tuple[str, str] = ("Yes", "No"),
         name: str = "customers.csv") -> Path:
    rng = np.random.default_rng(0)
    usage = rng.normal(0, 1, n)
    churned = rng.random(n) < 1 / (1 + np.exp(-(2 * usage - 1)))
    frame = pd.DataFrame({
        "customer": [f"C{i:04d}" for i in range(n)],
        "usage_change": usage.round(3),
        "monthly_fee": [" " if i % 31 == 0 else f"{v:.2f}" for i, v in enumerate(rng.uniform(10, 90, n))],
        "plan": rng.choice(["monthly", "annual"], n),
        "left": np.where(churned, *label_values),
    })
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _run(*args: str):
    return runner.invoke(app, ["model", "evaluate", *args])


def test_json_output_is_exactly_one_object_with_the_contract_keys(tmp_path):
    result = _run("--csv", str(_csv(tmp_path)), "--label", "left", "--id", "customer",
                  "--folds", "3", "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert payload["rows"] == 240 and payload["folds"] == 3
    assert 0 < payload["positive_rate"] < 1
    for block in (payload["model"], payload["baselines"]["logistic_regression"]):
        assert {"roc_auc", "roc_auc_std", "pr_auc", "brier"} <= set(block)
        assert all(isinstance(v, float) for v in block.values())
        assert block["roc_auc"] > 0.7
    assert payload["dropped_columns"] == {"customer": "id column"}
    assert "fold 3/3" in result.stderr and "fold 1/3" not in result.stdout


def test_table_output_by_default(tmp_path):
    result = _run("--csv", str(_csv(tmp_path, label_values=("churned", "active"))), "--label", "left",
                  "--folds", "2")
    assert result.exit_code == 0, result.stderr
    assert "churn model" in result.stdout and "logistic regression" in result.stdout
    assert "ROC-AUC" in result.stdout


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good = _csv(tmp_path)
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    return {
        "missing file": (["--csv", str(tmp_path / "absent.csv"), "--label", "left"], "file not found"),
        "not a csv": (["--csv", str(binary), "--label", "left"], "not a CSV"),
        "missing label": (["--csv", str(good), "--label", "churn_flag"], "label column 'churn_flag' not found"),
        "missing id": (["--csv", str(good), "--label", "left", "--id", "account_id"], "id column 'account_id' not found"),
    }


@pytest.mark.parametrize("case", ["missing file", "not a csv", "missing label", "missing id"])
def test_bad_files_and_columns_exit_2_with_one_line(tmp_path, case):
    args, message = _bad_inputs(tmp_path)[case]
    result = _run(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.assign(left="No"), "single class"),
        (lambda f: f.assign(left=np.resize(["low", "mid", "high"], len(f))), "3 distinct values"),
        (lambda f: f.head(49), "only 49 labelled rows"),
        (lambda f: f.assign(left=np.resize([1, 2], len(f))), "unrecognized value"),
    ],
    ids=["one class", "three classes", "too few rows", "unrecognized label"],
)
def test_bad_labels_and_small_tables_exit_2_with_one_line(tmp_path, mutate, message):
    path = _write(tmp_path, mutate(pd.read_csv(_csv(tmp_path))))
    result = _run("--csv", str(path), "--label", "left", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_installed_module_entry_point_runs_as_a_subprocess(tmp_path):
    path = _csv(tmp_path, n=150)
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "model", "evaluate", "--csv", str(path),
         "--label", "left", "--id", "customer", "--folds", "2", "--json"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["rows"] == 150 and payload["folds"] == 2
    bad = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "model", "evaluate", "--csv", str(path), "--label", "nope"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.strip().splitlines()) == 1
