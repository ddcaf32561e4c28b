"""Generated ticket text: deterministic per seed, every intent, measured noise, mixed intents, and
intent shares moved by an account's latent state."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.intents.text import (BASE_SHARES, ERROR_CODES, INTENT_NAMES, INTENTS, MIXED_SHARE, PAIN_BOOST,
                                 PRICE_BOOST, TYPO_SHARE, _SENTENCES, draw_intents, generate_tickets, ticket_text)


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return generate_tickets(4000, seed=11)


def test_the_intents_are_declared_once_with_a_description():
    assert set(INTENT_NAMES) == {"compliance_query", "fraud_report", "billing_dispute", "bug", "api_error",
                                 "outage", "how_to", "cancellation_intent"}
    assert all(len(INTENTS[name]) > 20 for name in INTENT_NAMES)


def test_same_seed_same_text_other_seed_other_text():
    frame = pd.DataFrame({"intent": list(INTENT_NAMES) * 30})
    first, again, other = ticket_text(frame, 5), ticket_text(frame, 5), ticket_text(frame, 6)
    pd.testing.assert_frame_equal(first, again)
    assert (first["body"] != other["body"]).mean() > 0.9


def test_text_keeps_the_callers_index_and_intents(tickets):
    frame = pd.DataFrame({"intent": ["outage", "how_to", "outage"]}, index=[10, 20, 30])
    text = ticket_text(frame, 1)
    assert list(text.index) == [10, 20, 30]
    assert text["subject"].str.len().gt(0).all() and text["body"].str.len().gt(0).all()
    assert set(tickets["intent"]) == set(INTENT_NAMES)
    assert tickets["created_at"].is_monotonic_increasing


def test_unknown_intent_is_refused_by_name():
    with pytest.raises(ValueError, match="refund_please"):
        ticket_text(pd.DataFrame({"intent": ["bug", "refund_please"]}), 0)


def test_typos_are_present_and_measured(tickets):
    share = (tickets["typos"] > 0).mean()
    assert TYPO_SHARE * 0.75 < share <= TYPO_SHARE + 0.03
    assert tickets["typos"].max() == 3
    # a typo changes a word: ticket bodies with typos hold words no phrase bank has, clean ones none
    from models.intents import text as module
    banks = [*module._SENTENCES.values(), *module._SUBJECTS.values(), module._FILLER, module._GREETINGS,
             module._SIGNOFFS, module.NAMES, module.TITLES, module.PRODUCTS, module.ERROR_CODES, ("Sent from my iPhone",)]
    vocabulary = {w for bank in banks for phrase in bank for w in re.findall(r"[a-z]+", phrase.lower())}

    def unknown_words(body: str) -> int:
        return sum(w not in vocabulary for w in re.findall(r"[a-z]+", body.lower()))

    with_typos = tickets.loc[tickets["typos"] > 0, "body"].head(400).map(unknown_words)
    without = tickets.loc[tickets["typos"] == 0, "body"].head(400).map(unknown_words)
    assert (with_typos > 0).mean() > 0.8
    assert (without == 0).all()


def test_mixed_intents_carry_a_sentence_of_the_secondary_intent(tickets):
    mixed = tickets[tickets["secondary_intent"].notna()]
    assert MIXED_SHARE * 0.8 < len(mixed) / len(tickets) < MIXED_SHARE * 1.2
    assert (mixed["secondary_intent"] != mixed["intent"]).all()
    clean = mixed[(mixed["typos"] == 0) & ~mixed["body"].str.islower()]
    found = [any(s.split("{")[0][:25] in body for s in _SENTENCES[sec]) for sec, body in zip(clean["secondary_intent"], clean["body"])]
    assert np.mean(found) > 0.95


def test_short_and_long_texts_signatures_codes_and_casing(tickets):
    lengths = tickets["body"].str.len()
    assert lengths.quantile(0.1) < 120 and lengths.quantile(0.9) > 300
    assert tickets["body"].str.contains("Sent from my iPhone").mean() > 0.15
    assert tickets["body"].str.contains(r"\n\n(?:Thanks|Best regards|Kind regards|Cheers|Regards)", regex=True).mean() > 0.2
    technical = tickets[tickets["intent"].isin(["bug", "api_error", "outage"])]
    has_code = technical["subject"].str.cat(technical["body"], sep=" ").apply(lambda t: any(c in t for c in ERROR_CODES))
    assert has_code.mean() > 0.3
    assert (tickets["subject"].str.isupper()).mean() > 0.03
    assert tickets["subject"].str.endswith(("!!!", "??")).mean() > 0.1


def test_half_a_million_tickets_in_well_under_a_minute():
    import time
    frame = pd.DataFrame({"intent": np.resize(np.asarray(INTENT_NAMES, dtype=object), 50_000)})
    began = time.perf_counter()
    ticket_text(frame, 0)
    assert (time.perf_counter() - began) * 10 < 30  # 500k at this rate: under 30 s


def test_latent_state_moves_the_intent_shares():
    n = 40_000
    pain = np.arange(n) % 4 == 1
    price = np.arange(n) % 4 == 2
    intents = pd.Series(draw_intents(pain, price, seed=3))
    healthy = intents[~pain & ~price].value_counts(normalize=True)
    hurting = intents[pain].value_counts(normalize=True)
    pressed = intents[price].value_counts(normalize=True)
    assert set(intents) == set(INTENT_NAMES)
    assert healthy["how_to"] == pytest.approx(0.42, abs=0.02)
    for boost, observed in ((PAIN_BOOST, hurting), (PRICE_BOOST, pressed)):
        weights = {name: BASE_SHARES[name] * boost.get(name, 1.0) for name in INTENT_NAMES}
        for name in INTENT_NAMES:
            assert observed[name] == pytest.approx(weights[name] / sum(weights.values()), abs=0.015), name
    assert hurting[["bug", "api_error", "outage"]].sum() > 1.8 * healthy[["bug", "api_error", "outage"]].sum()
    assert pressed["billing_dispute"] > 2.5 * healthy["billing_dispute"]
    assert hurting["compliance_query"] < healthy["compliance_query"]  # rare intents keep their weight, not their share
    np.testing.assert_array_equal(draw_intents(pain, price, seed=3), intents.to_numpy())
