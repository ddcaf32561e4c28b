"""Rescue outcomes as an experiment: who was treated, who was held out, what happened.

Pure frame logic behind the feedback assets (`assets/feedback.py`), the demo loop and the
model's treatment marking. Which unit counts in the experiment: an account enters it the first
time the policy either routed it (treated) or held it out (holdout), and is counted once, with the
outcome of the renewal that followed. A later case on the same account, after a cooldown, is
another decision about an account that already belongs to a group, so it is not counted again.

Who is "treated": an account whose first decision routed it to the queue (a case was opened),
whether or not anyone logged a play on it. The policy randomizes at that decision, between
routing an eligible account and holding it out, so "routed" and "held out" are the two arms the
randomization made alike (intention to treat). Requiring a play, or counting every case an
account ever had, would select on what happened after the draw (which cases the team chose to
work, which accounts came back after a cooldown) and bias the comparison. Every report of the
treated-vs-holdout save rate goes through `experiment_units`, so they agree: the
`play_effectiveness` asset and the queue-operations metrics (`arm_save_rates`).
"""

from collections.abc import Mapping

import pandas as pd

from models.experiment.effectiveness import Effectiveness
from models.experiment.effectiveness import play_effectiveness as compare_with_holdout
from models.cases.lifecycle import OUTCOME_STATUS

#: Columns of the `rescue_outcomes` asset.
OUTCOME_COLUMNS = ["group", "account_id", "case_id", "entered_at", "treated_at", "plays", "outcome", "resolved_at", "arr"]
#: Outcome of a resolved case, from its terminal status.
_STATUS_OUTCOME = {status: outcome for outcome, status in OUTCOME_STATUS.items()}
#: Play label of a case resolved without any play logged.
NO_PLAY = "(no play logged)"
#: Fewer accounts than this in either group and the verdict says the sample is too small.
MIN_PER_ARM = 30
#: Columns of `arm_save_rates`.
SAVE_RATE_COLUMNS = ["arm", "accounts", "saved", "churned", "save_rate"]


def rescue_outcome_frame(cases: pd.DataFrame, plays: pd.DataFrame | None, holdout_log: pd.DataFrame,
                         holdout_outcomes: pd.DataFrame) -> pd.DataFrame:
    """Treated and holdout units (columns `OUTCOME_COLUMNS`) from the queue store's tables.

    Treated: one row per case; ``treated_at`` is its first play (NaT while nobody has worked
    it), ``outcome`` saved | churned | no_action once resolved, else None. Holdout: one row per
    recorded renewal outcome of a held-out account (an account the routing log shows with action
    ``holdout``), plus one row (outcome None) per held-out account whose renewal is still to come.

    The store's full tables are the usual input. Reports that read fewer columns still get the
    same units: without `evidence` a case entered at its `snapshot_date` (else `opened_at`);
    without `held_out_at` a recorded outcome entered at the account's first holdout in the log;
    a missing `arr` or `renewal_date` is left empty. `plays` may be None (no play logged).
    """
    if plays is None:
        plays = pd.DataFrame({"case_id": pd.Series(dtype=object), "at": pd.Series(dtype=object),
                              "play": pd.Series(dtype=object)})
    by_case = plays.sort_values("at").groupby("case_id").agg(treated_at=("at", "min"), plays=("play", list))
    treated = pd.DataFrame({
        "group": "treated",
        "account_id": cases["account_id"].astype(str),
        "case_id": cases["case_id"],
        "entered_at": _case_entered_at(cases),
        "treated_at": _stamps_of(cases["case_id"], by_case["treated_at"]),
        "plays": [p if isinstance(p, list) else [] for p in cases["case_id"].map(by_case["plays"])],
        "outcome": cases["status"].map(_STATUS_OUTCOME),
        "resolved_at": pd.to_datetime(cases["resolved_at"]),
        "arr": _column(cases, "arr", float("nan")).pipe(pd.to_numeric, errors="coerce"),
    })
    held = holdout_log[holdout_log["action"] == "holdout"]
    held_ids = set(held["account_id"].astype(str))
    if "snapshot_date" in held.columns:
        first = held.groupby("account_id", as_index=False)["snapshot_date"].min()
    else:
        first = pd.DataFrame({"account_id": sorted(held_ids), "snapshot_date": pd.NaT})
    first_held = pd.Series(pd.to_datetime(first["snapshot_date"]).to_numpy(),
                           index=first["account_id"].astype(str).to_numpy())
    known = holdout_outcomes[holdout_outcomes["account_id"].astype(str).isin(held_ids)]
    known_ids = known["account_id"].astype(str)
    recorded = pd.DataFrame({
        "group": "holdout",
        "account_id": known_ids,
        "case_id": None,
        "entered_at": (pd.to_datetime(known["held_out_at"]) if "held_out_at" in known.columns
                       else _stamps_of(known_ids, first_held)),
        "treated_at": pd.NaT,
        "plays": [[] for _ in range(len(known))],
        "outcome": known["outcome"],
        "resolved_at": pd.to_datetime(_column(known, "renewal_date", pd.NaT)),
        "arr": _column(known, "arr", float("nan")).pipe(pd.to_numeric, errors="coerce"),
    })
    first = first[~first["account_id"].astype(str).isin(set(recorded["account_id"]))]
    waiting = pd.DataFrame({
        "group": "holdout",
        "account_id": first["account_id"].astype(str),
        "case_id": None,
        "entered_at": pd.to_datetime(first["snapshot_date"]),
        "treated_at": pd.NaT,
        "plays": [[] for _ in range(len(first))],
        "outcome": None,
        "resolved_at": pd.NaT,
        "arr": float("nan"),
    })
    frames = [f for f in (treated, recorded, waiting) if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in OUTCOME_COLUMNS})
    out = pd.concat(frames, ignore_index=True)[OUTCOME_COLUMNS]
    for column in ("entered_at", "treated_at", "resolved_at"):
        out[column] = pd.to_datetime(out[column])
    return out.sort_values(["entered_at", "group", "account_id"], ignore_index=True)


def _case_entered_at(cases: pd.DataFrame) -> list:
    """The snapshot that opened each case: its earliest evidence entry (NaT without any)."""
    if "evidence" in cases.columns:
        return [min(pd.Timestamp(e["snapshot_date"]) for e in ev) if ev else pd.NaT for ev in cases["evidence"]]
    fallback = "snapshot_date" if "snapshot_date" in cases.columns else "opened_at"
    return list(pd.to_datetime(cases[fallback]))


def _stamps_of(keys: pd.Series, stamps: pd.Series) -> pd.Series:
    """`stamps[key]` for every key, NaT where there is none, on the index of `keys`."""
    found = pd.to_datetime(stamps.reindex(keys.to_numpy()))
    return pd.Series(found.to_numpy(), index=keys.index)


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(default, index=frame.index)


def experiment_units(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (treated, holdout) frames `models.experiment.effectiveness.play_effectiveness` compares.

    Each account counts once, in the group of its earliest decision, and only once that
    decision's outcome is known as saved or churned. Treated rows are one per play
    (account_id, arr, outcome, play); holdout rows one per account (account_id, arr, outcome).
    """
    first = outcomes.sort_values(["entered_at", "group"], kind="stable").drop_duplicates("account_id")
    known = first[first["outcome"].isin(["saved", "churned"])]
    treated = known[known["group"] == "treated"].assign(
        play=lambda f: [p if len(p) else [NO_PLAY] for p in f["plays"]]).explode("play")
    holdout = known[known["group"] == "holdout"]
    return (treated[["account_id", "arr", "outcome", "play"]].reset_index(drop=True),
            holdout[["account_id", "arr", "outcome"]].reset_index(drop=True))


def arm_save_rates(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Save rate per arm of the experiment units of `outcomes` (a `rescue_outcome_frame`).

    One row per arm, treated then holdout, with `SAVE_RATE_COLUMNS`: accounts (each counted
    once, with a known saved or churned outcome), saved, churned, save_rate (nan for none). These
    are the counts and rates of `compare_groups(*experiment_units(outcomes)).overall`.
    """
    treated, holdout = experiment_units(outcomes)
    rows = []
    for arm, units in (("treated", treated), ("holdout", holdout)):
        per_account = units.drop_duplicates("account_id")
        saved = int((per_account["outcome"] == "saved").sum())
        churned = int((per_account["outcome"] == "churned").sum())
        total = saved + churned
        rows.append({"arm": arm, "accounts": total, "saved": saved, "churned": churned,
                     "save_rate": saved / total if total else float("nan")})
    return pd.DataFrame(rows, columns=SAVE_RATE_COLUMNS)


def compare_groups(treated: pd.DataFrame, holdout: pd.DataFrame, plays: Mapping[str, str] | None = None) -> Effectiveness:
    """`models.experiment.effectiveness.play_effectiveness` with the product's defaults (30 per arm,
    95%); `plays` is the policy's catalogue (`Policy.play_names`), the labels of the per-play rows."""
    return compare_with_holdout(treated, holdout, min_per_arm=MIN_PER_ARM, confidence=0.95, plays=plays)


def effectiveness_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The effectiveness table as shown: rates and differences in percent (missing where a group
    is empty), the interval as text (None where there is none)."""
    def interval(lo: float, hi: float) -> str | None:
        return None if pd.isna(lo) or pd.isna(hi) else f"{lo * 100:+.1f} .. {hi * 100:+.1f}"

    return pd.DataFrame({
        "play": table["play"],
        "n treated / holdout": [f"{a} / {b}" for a, b in zip(table["n_treated"], table["n_holdout"])],
        "save rate treated": (table["save_rate_treated"] * 100).round(1),
        "save rate holdout": (table["save_rate_holdout"] * 100).round(1),
        "diff (pts)": (table["save_rate_diff"] * 100).round(1),
        "95% CI": [interval(lo, hi) for lo, hi in zip(table["diff_ci_low"], table["diff_ci_high"])],
        "ARR retained diff (pts)": (table["arr_retained_diff"] * 100).round(1),
        "verdict": table["verdict"],
    })


def rescue_treatments(rescue_outcomes: pd.DataFrame) -> pd.DataFrame:
    """(account_id, treated_at) of every account that received a rescue play."""
    treated = rescue_outcomes[(rescue_outcomes["group"] == "treated") & rescue_outcomes["treated_at"].notna()]
    return pd.DataFrame({"account_id": treated["account_id"].astype(str),
                         "treated_at": pd.to_datetime(treated["treated_at"])}).reset_index(drop=True)
