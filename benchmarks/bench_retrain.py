"""The weekly retrain's fit, on every training row and on a weighted sample of the negatives, as JSON.

    python benchmarks/bench_retrain.py [--rows-per-date 100000] [--dates 8] [--valid-dates 2]
                                       [--share 0.2] [--columns 10] [--shift -7] [--seed 0]

A training set shaped like the retrain's (`models.churn.training`): `--dates` observation dates
of `--rows-per-date` rows each, features and labels from a generated table
(`models.churn.generated.interaction_table`, churn driven by interactions between columns; with
`--shift -7`, 4.5% churners, the few percent a company's observation dates hold). The latest
`--valid-dates` dates are the validation window (`time_split`), never sampled. Two fits of the
churn model (`fit_churn_model`, as the retrain calls it) on the same rows:

- **full**: every training row, weight 1;
- **sampled**: every churn row and, on each training date, a seeded share `--share` of the
  non-churn rows, each weighted by the inverse (`models.churn.sampling.sample_negatives`, as
  `build_training_set` applies it before features are built; `--share 0.2` is about the rate
  the default `negative_sample_rows` gives a 1,000,000-account company).

The two training sets are built here and written to pickles; each fit runs in a fresh
interpreter that reads its own (so its peak memory is the fit's with its training set, as the
retrain holds it): printed per fit are its wall and CPU seconds, the process's peak resident
memory and how much the fit added to what reading the rows took,
the training rows, and on the unsampled validation window the ROC-AUC, the mean predicted
probability against the observed churn rate, and the Brier score; then the differences, sampled
minus full (the goal: ROC-AUC within 0.002). The generated table stands in for the demo world,
whose generation at this size does not fit a benchmark run: the cost of building features for
the dropped rows (saved by sampling too) is not in these figures. The load average before each
fit is printed: the cores may be shared. This is a benchmark: it prints figures and gates nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import brier_score_loss, roc_auc_score  # noqa: E402

from models.churn.generated import interaction_table  # noqa: E402
from models.churn.model import fit_churn_model  # noqa: E402
from models.churn.sampling import WEIGHT, sample_negatives  # noqa: E402
from models.churn.training import time_split  # noqa: E402
from models.churn.validation import effective_tuning_budget  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def training_frame(rows_per_date: int, dates: int, *, columns: int, shift: float, seed: int) -> pd.DataFrame:
    """(observation_date, account_id, features..., label): one generated table cut into dates."""
    X, y = interaction_table(rows_per_date * dates, columns, seed=seed, shift=shift)
    first = pd.Timestamp("2026-01-05")
    frame = X.assign(
        observation_date=np.repeat([first + pd.Timedelta(days=28 * i) for i in range(dates)], rows_per_date),
        account_id=np.tile(np.arange(rows_per_date), dates),
        label=y,
    )
    return frame


def write_sets(args: argparse.Namespace, workdir: Path) -> dict[str, int | None]:
    """The full and the sampled training set, as time splits, pickled under `workdir`; returns
    the sampled set's target rows."""
    frame = training_frame(args.rows_per_date, args.dates, columns=args.columns, shift=args.shift, seed=args.seed)
    train_dates = args.dates - args.valid_dates
    cutoff = sorted(frame["observation_date"].unique())[train_dates]
    train_rows = args.rows_per_date * train_dates
    positives = int(frame.loc[frame["observation_date"] < cutoff, "label"].sum())
    # the target number of training rows that keeps `share` of the training dates' negatives
    target = int(round(positives + args.share * (train_rows - positives)))
    sets = {"full": sample_negatives(frame, target_rows=None, valid_dates=args.valid_dates, seed=args.seed),
            "sampled": sample_negatives(frame, target_rows=target, valid_dates=args.valid_dates, seed=args.seed)}
    for mode, data in sets.items():
        pd.to_pickle(time_split(data, valid_dates=args.valid_dates), workdir / f"{mode}.pkl")
    return {"full": None, "sampled": target}


def fit_one(path: Path, mode: str, target: int | None, seed: int) -> dict:
    train, valid = pd.read_pickle(path)
    features = [c for c in train.columns if c not in ("observation_date", "account_id", "label", WEIGHT)]
    before_mb = _peak_mb()
    load = os.getloadavg()[0]
    cpu, started = time.process_time(), time.perf_counter()
    # the tuning budget the retrain uses for this many training rows (time_validation_report)
    model = fit_churn_model(train, valid, label="label", features=features, categorical=["plan"],
                            seed=seed, weight=WEIGHT, tuning_budget=effective_tuning_budget(len(train), None))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    p = model.predict_proba(valid)
    y = valid["label"].to_numpy()
    negatives = train["label"].to_numpy() == 0
    return {
        "fit": mode,
        "load_average_before": round(load, 2),
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_memory_mb": round(_peak_mb(), 1),
        "fit_added_memory_mb": round(_peak_mb() - before_mb, 1),
        "train_rows": len(train),
        "train_weighted_rows": round(float(train[WEIGHT].sum()), 1),
        "train_positive_rows": int((~negatives).sum()),
        "negative_share_kept": round(float(negatives.sum() / train.loc[negatives, WEIGHT].sum()), 6),
        "target_rows": target,
        "valid_rows": len(valid),
        "valid_positive_rate": round(float(y.mean()), 6),
        "valid_mean_predicted": round(float(p.mean()), 6),
        "valid_roc_auc": round(float(roc_auc_score(y, p)), 6),
        "valid_brier": round(float(brier_score_loss(y, p)), 6),
        "capacity": model.metadata["capacity"],
        "trees": model.metadata["best_iterations"],
        "blend_weight": model.metadata["blend_weight"],
        "calibration": model.metadata["calibration"]["method"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-date", type=int, default=100_000)
    parser.add_argument("--dates", type=int, default=8)
    parser.add_argument("--valid-dates", type=int, default=2)
    parser.add_argument("--share", type=float, default=0.2, help="share of the training dates' negatives kept")
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--shift", type=float, default=-7.0, help="added to the generated log-odds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=3, metavar=("PATH", "MODE", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        path, mode, target = args.one
        print(json.dumps(fit_one(Path(path), mode, int(target) if target != "-" else None, args.seed)), flush=True)
        return
    print(json.dumps({"python": platform.python_version(), "lightgbm": lgb.__version__, "cpus": os.cpu_count(),
                      "rows_per_date": args.rows_per_date, "dates": args.dates, "valid_dates": args.valid_dates,
                      "share": args.share}), flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        targets = write_sets(args, Path(tmp))
        for mode in ("full", "sampled"):
            target = targets[mode]
            done = subprocess.run([sys.executable, __file__, "--seed", str(args.seed), "--one", str(Path(tmp) / f"{mode}.pkl"),
                                   mode, "-" if target is None else str(target)],
                                  cwd=REPO, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"the {mode} fit failed: {done.stderr.strip()[-2000:]}")
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(results[mode]), flush=True)
    full, sampled = results["full"], results["sampled"]
    print(json.dumps({
        "sampled_minus_full": {
            "valid_roc_auc": round(sampled["valid_roc_auc"] - full["valid_roc_auc"], 6),
            "valid_mean_predicted": round(sampled["valid_mean_predicted"] - full["valid_mean_predicted"], 6),
            "valid_brier": round(sampled["valid_brier"] - full["valid_brier"], 6),
        },
        "seconds_ratio": round(sampled["seconds"] / full["seconds"], 3),
        "peak_memory_ratio": round(sampled["peak_memory_mb"] / full["peak_memory_mb"], 3),
        "roc_auc_within_0.002": abs(sampled["valid_roc_auc"] - full["valid_roc_auc"]) <= 0.002,
    }), flush=True)


if __name__ == "__main__":
    main()
