"""`rescue model ...`: the churn model on any churn table (bring your own data).

    rescue model evaluate --csv customers.csv --label Churned --id customer_id [--folds 5] [--json]

infers column types, normalizes the label, and runs stratified k-fold cross-validation of the
churn model and of two baselines on the same folds: a logistic regression and LightGBM with its
library defaults (100 trees, 31 leaves), the reference the model's chosen capacity must not fall
below. The result is a table on
stdout, or with `--json` exactly one JSON object. Progress goes to stderr. Bad input exits with
code 2 and one line on stderr.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import pandas as pd


BAD_INPUT = 2
SUMMARY_KEYS = ("roc_auc", "roc_auc_std", "pr_auc", "brier", "log_loss", "top_decile_lift", "ece")

model_app = typer.Typer(help="Evaluate the churn model on your own data.", no_args_is_help=True)


class InputError(Exception):
    """Input the user must fix; the message is printed as one line."""


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file, turning every way it can fail into an `InputError` with one line."""
    import pandas as pd

    if not path.exists():
        raise InputError(f"file not found: {path}")
    if not path.is_file():
        raise InputError(f"not a file: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(64 * 1024)
        if "\x00" in sample:
            raise InputError(f"{path} is not a CSV file (it contains binary data)")
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
        frame = pd.read_csv(path, sep=delimiter, encoding="utf-8-sig", skipinitialspace=True)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a CSV file (not UTF-8 text)") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty") from None
    except pd.errors.ParserError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise InputError(f"{path} is not a valid CSV file: {first_line}") from None
    if frame.shape[1] < 2:
        raise InputError(f"{path} is not a CSV table with a label and features (found {frame.shape[1]} column)")
    return frame


def _summary(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(metrics[k]), 6) for k in SUMMARY_KEYS if k in metrics}


def _table(result: dict[str, Any]) -> Table:
    table = Table(title=f"{result['folds']}-fold cross-validation on {result['rows']} rows "
                        f"({result['positive_rate']:.1%} churned)")
    table.add_column("model", no_wrap=True)
    headers = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "log_loss": "log-loss",
               "top_decile_lift": "lift@10%", "ece": "ECE"}
    for header in headers.values():
        table.add_column(header, justify="right")
    rows = [("churn model", result["model"])]
    names = {"logistic_regression": "logistic regression", "lightgbm_default": "default LightGBM"}
    rows += [(names.get(name, name.replace("_", " ")), m) for name, m in result["baselines"].items()]
    for name, m in rows:
        auc = f"{m['roc_auc']:.3f} ± {m['roc_auc_std']:.3f}"
        table.add_row(name, auc, *(f"{m[k]:.3f}" for k in list(headers)[1:]))
    return table


@model_app.command("evaluate")
def evaluate(
    csv_path: Annotated[Path, typer.Option("--csv", help="Churn table as a CSV file, one row per customer.")],
    label: Annotated[str, typer.Option("--label", help="Column holding the churn label (yes/no, 1/0, churned/active...).")],
    id_column: Annotated[str | None, typer.Option("--id", help="Identifier column, excluded from the features.")] = None,
    folds: Annotated[int, typer.Option("--folds", help="Number of stratified cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Random seed for the folds and the model.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object instead of a table.")] = False,
) -> None:
    """Cross-validate the churn model, a logistic regression and a default LightGBM on the same folds."""
    # LightGBM and scikit-learn load here, not when the `rescue` command starts.
    from models.churn.model import ModelError
    from models.churn.tabular import TableError, prepare_table
    from models.churn.validation import cross_validate

    err = Console(stderr=True, highlight=False)
    started = time.perf_counter()
    try:
        table = prepare_table(read_csv(csv_path), label=label, id_column=id_column)
        if folds < 2:
            raise InputError(f"--folds must be at least 2, got {folds}")
        for name, reason in table.dropped.items():
            err.print(f"column {name!r} not used: {reason}")
        if table.rows_without_label:
            err.print(f"{table.rows_without_label} rows without a label left out")
        err.print(f"{len(table.y)} rows, {table.X.shape[1]} features "
                  f"({len(table.categorical)} categorical), {table.positive_rate:.1%} churned")

        def progress(number: int, metrics: dict[str, dict[str, float]]) -> None:
            err.print(f"fold {number}/{folds}: model ROC-AUC {metrics['model']['roc_auc']:.3f}, "
                      f"logistic regression {metrics['logistic_regression']['roc_auc']:.3f}, "
                      f"default LightGBM {metrics['lightgbm_default']['roc_auc']:.3f}")

        cv = cross_validate(table.X, table.y, folds=folds, seed=seed,
                            categorical=table.categorical, progress=progress)
    except (InputError, TableError, ModelError) as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(BAD_INPUT) from None

    result = {
        "rows": int(len(table.y)),
        "positive_rate": round(table.positive_rate, 6),
        "folds": folds,
        "model": _summary(cv["model"]),
        "baselines": {name: _summary(m) for name, m in cv["baselines"].items()},
        "capacity": cv["capacity"],
        "features": list(table.X.columns),
        "categorical": table.categorical,
        "dropped_columns": table.dropped,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        out = Console(highlight=False)
        out.width = max(out.width, 100)  # the table needs 100 columns; pipes default to 80
        out.print(_table(result))
