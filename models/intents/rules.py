"""The keyword-rules baseline: the intent routing a support team writes by hand.

An ordered list of (intent, regular expression) on the ticket's subject and body, lower-cased;
the first rule that matches decides, and a ticket no rule matches gets `FALLBACK` (the general
queue's intent). The order puts the costly intents first (compliance, fraud), as a team would.
It is what a classifier must beat before it routes anything (`models.intents.classifier.decide`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

#: Intent of a ticket that no rule matches.
FALLBACK = "how_to"

RULES: tuple[tuple[str, str], ...] = (
    ("compliance_query", r"gdpr|\bdpa\b|data processing agreement|soc ?2|hipaa|compliance|subprocessor|audit"),
    ("fraud_report", r"fraud|hacked|unauthori[sz]ed|phishing|suspicious|compromised|stolen"),
    ("billing_dispute", r"refund|chargeback|charged twice|overcharg|invoice|billed"),
    ("outage", r"\bdown\b|outage|unavailable|not loading|unreachable"),
    ("api_error", r"\bapi\b|webhook|rate limit|oauth|endpoint|integration"),
    ("cancellation_intent", r"cancel|not renew|terminate|downgrade|close our account"),
    ("bug", r"\bbug\b|crash|broken|not working|error|wrong"),
    ("how_to", r"how (do|to|can)|where (can|do)|is it possible|guide"),
)
_COMPILED = tuple((intent, re.compile(pattern)) for intent, pattern in RULES)


def rule_intent(text: str) -> str:
    """The intent of the first rule matching `text` (lower-cased), else `FALLBACK`."""
    lowered = text.lower()
    for intent, pattern in _COMPILED:
        if pattern.search(lowered):
            return intent
    return FALLBACK


def predict_rules(frame: pd.DataFrame) -> np.ndarray:
    """The rules' intent for each ticket of `frame` (columns `subject`, `body`)."""
    texts = frame["subject"].astype(str) + "\n" + frame["body"].astype(str)
    return np.asarray([rule_intent(t) for t in texts], dtype=object)
