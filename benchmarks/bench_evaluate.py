"""`rescue model evaluate` against rows, beside a bare default LightGBM on the same folds, as JSON.

    python benchmarks/bench_evaluate.py [--rows 5000 50000 500000] [--columns 10] [--folds 5]
                                        [--goals] [--kind interaction|linear] [--seed 0]

For every size, a generated table (`models.churn.generated`: churn driven by interactions
between columns, or linear in its log-odds) is written to a CSV file and evaluated by the CLI
exactly as a user runs it (`python -m pipelines.cli.main model evaluate --csv ... --json`, a
fresh interpreter: reading, type inference, 5-fold CV of the model and both baselines). In the
same run the bare reference, LightGBM with every library default (`LGBMClassifier()`: 100 trees,
31 leaves, all cores) fitted and scored on the same stratified folds of the same table, is timed
in this process, and again on one thread (`n_jobs=1`): on shared cores LightGBM's default
threads can cost more than they save on small tables. Printed per size: wall and CPU seconds of
the command and of the reference, their ratio, and the ROC-AUC of the model, the logistic
regression, the default LightGBM inside the command and the bare reference, side by side; and,
between consecutive sizes, the exponent of the command's wall and CPU time in the rows (1.0:
linear; on shared cores the CPU one is the steadier). `--goals` adds the two sizes the model is
held to: 5,000 rows x 20 columns and 64,000 x 10. The load average before each size is printed
too: the cores may be shared. This is a benchmark: it prints figures and gates nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.churn.generated import interaction_table, linear_table  # noqa: E402

GOALS = ((5_000, 20), (64_000, 10))
LABEL = "churned"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _evaluate(path: Path, folds: int, seed: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    cpu, started = _children_cpu(), time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli.main", "model", "evaluate", "--csv", str(path),
         "--label", LABEL, "--folds", str(folds), "--seed", str(seed), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"rescue model evaluate failed on {path}: {done.stderr.strip()}")
    return {"wall": wall, "cpu": cpu, "result": json.loads(done.stdout)}


def _reference(X, y: np.ndarray, folds: int, seed: int, *, n_jobs: int | None = None) -> dict:
    """LGBMClassifier() with every default, fitted and scored on each fold: the bare reference
    (`n_jobs` None: the library's default, every core)."""
    aucs = []
    cpu, started = time.process_time(), time.perf_counter()
    extra = {} if n_jobs is None else {"n_jobs": n_jobs}
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        model = lgb.LGBMClassifier(verbosity=-1, **extra).fit(X.iloc[tr], y[tr])
        aucs.append(roc_auc_score(y[te], model.predict_proba(X.iloc[te])[:, 1]))
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
            "roc_auc": float(np.mean(aucs)), "roc_auc_std": float(np.std(aucs))}


def run_case(rows: int, columns: int, *, kind: str, folds: int, seed: int, workdir: Path) -> dict:
    make = interaction_table if kind == "interaction" else linear_table
    X, y = make(rows, columns, seed=seed)
    path = workdir / f"{kind}-{rows}x{columns}.csv"
    X.assign(**{LABEL: np.where(y == 1, "yes", "no")}).to_csv(path, index=False)
    load = os.getloadavg()[0]
    command = _evaluate(path, folds, seed)
    reference = _reference(X, y, folds, seed)
    one_thread = _reference(X, y, folds, seed, n_jobs=1)
    path.unlink()
    result = command["result"]
    baselines = result["baselines"]
    return {
        "rows": rows, "columns": columns, "kind": kind, "folds": folds,
        "load_average_before": round(load, 2),
        "seconds": round(command["wall"], 2),
        "cpu_seconds": round(command["cpu"], 2),
        "seconds_inside": result["seconds"],
        "reference_seconds": round(reference["wall"], 2),
        "reference_cpu_seconds": round(reference["cpu"], 2),
        "ratio": round(command["wall"] / reference["wall"], 2),
        "reference_one_thread_seconds": round(one_thread["wall"], 2),
        "ratio_one_thread": round(command["wall"] / one_thread["wall"], 2),
        "roc_auc": {
            "model": result["model"]["roc_auc"],
            "logistic_regression": baselines["logistic_regression"]["roc_auc"],
            "lightgbm_default": baselines["lightgbm_default"]["roc_auc"],
            "reference": round(reference["roc_auc"], 6),
        },
        "roc_auc_std": {"model": result["model"]["roc_auc_std"], "reference": round(reference["roc_auc_std"], 6)},
        "capacity": result["capacity"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[5_000, 50_000, 500_000])
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=("interaction", "linear"), default="interaction")
    parser.add_argument("--goals", action="store_true", help="also 5,000 x 20 and 64,000 x 10")
    args = parser.parse_args()
    print(json.dumps({"python": platform.python_version(), "lightgbm": lgb.__version__,
                      "cpus": os.cpu_count()}), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        series = []
        for rows in args.rows:
            case = run_case(rows, args.columns, kind=args.kind, folds=args.folds, seed=args.seed, workdir=Path(tmp))
            if series:
                before = series[-1]
                growth = math.log(rows / before["rows"])
                case["time_exponent_in_rows"] = round(math.log(case["seconds"] / before["seconds"]) / growth, 2)
                case["cpu_time_exponent_in_rows"] = round(
                    math.log(case["cpu_seconds"] / before["cpu_seconds"]) / growth, 2)
            series.append(case)
            print(json.dumps(case), flush=True)
        if args.goals:
            for rows, columns in GOALS:
                case = run_case(rows, columns, kind=args.kind, folds=args.folds, seed=args.seed, workdir=Path(tmp))
                print(json.dumps({"goal": True, **case}), flush=True)


if __name__ == "__main__":
    main()
