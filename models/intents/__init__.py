"""Ticket intents: generated ticket text with a known intent, a keyword-rules baseline and a
TF-IDF classifier with a champion gate and a human-triage threshold.

Pure logic (no Dagster). Not yet wired into the demo world, the assets or the policy.
"""

from models.intents.text import INTENTS, INTENT_NAMES

__all__ = ["INTENTS", "INTENT_NAMES"]
