"""The intent classifier on a time split of generated tickets: against the keyword rules, the
gate, calibration, triage and the round trip through bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from models.churn.evaluation import expected_calibration_error
from models.intents.classifier import (IntentClassifier, choose_threshold, decide, evaluate, fit_classifier,
                                       multiclass_brier, time_split)
from models.intents.rules import FALLBACK, predict_rules, rule_intent
from models.intents.text import INTENT_NAMES, generate_tickets


@pytest.fixture(scope="module")
def world():
    tickets = generate_tickets(3000, seed=7)
    train, test = time_split(tickets, test_share=0.3)
    classifier = fit_classifier(train)
    return train, test, classifier, classifier.predict(test), predict_rules(test)


def test_time_split_trains_on_earlier_tickets(world):
    train, test, *_ = world
    assert train["created_at"].max() <= test["created_at"].min()
    assert len(test) == 900 and set(test["intent"]) == set(INTENT_NAMES)


def test_keyword_rules_are_first_match_with_a_fallback():
    assert rule_intent("Please REFUND the double charge") == "billing_dispute"
    assert rule_intent("GDPR question about a refund") == "compliance_query"
    assert rule_intent("hello, anybody there?") == FALLBACK


def test_evaluation_matches_scikit_learn_and_counts_every_ticket(world):
    _, test, _, predicted, rules = world
    for pred in (predicted, rules):
        result = evaluate(test["intent"].to_numpy(), pred)
        assert result.macro_f1 == pytest.approx(f1_score(test["intent"], pred, average="macro"))
        low, high = result.macro_f1_interval
        assert low < result.macro_f1 < high and high - low < 0.1
        assert result.confusion.to_numpy().sum() == len(test)
        assert result.per_intent["support"].sum() == len(test)
        assert result.per_intent.loc["how_to", "recall"] == pytest.approx(
            ((pred == "how_to") & (test["intent"] == "how_to")).sum() / (test["intent"] == "how_to").sum())


def test_classifier_beats_the_rules_and_meets_the_compliance_gate(world):
    _, test, _, predicted, rules = world
    truth = test["intent"].to_numpy()
    classifier, baseline = evaluate(truth, predicted), evaluate(truth, rules)
    assert classifier.macro_f1 > baseline.macro_f1 + 0.1
    assert classifier.macro_f1_interval[0] > baseline.macro_f1_interval[1]
    decision = decide(truth, predicted, baseline=rules)
    assert decision.promote, decision.reasons
    assert decision.metrics["compliance_recall"] >= 0.9
    assert any("beats the keyword baseline" in r for r in decision.reasons)
    assert any("meets the 0.90 threshold" in r for r in decision.reasons)


def test_gate_refuses_a_challenger_worse_than_the_champion(world):
    _, test, _, predicted, rules = world
    truth = test["intent"].to_numpy()
    decision = decide(truth, rules, baseline=rules, champion=predicted)
    assert not decision.promote
    assert any("does not beat the champion's" in r for r in decision.reasons)
    same = decide(truth, predicted, baseline=rules, champion=predicted)
    assert not same.promote
    assert any("does not beat the champion's" in r and "must lie above 0" in r for r in same.reasons)


def test_gate_refuses_a_better_challenger_below_the_compliance_threshold(world):
    _, test, _, predicted, rules = world
    truth = test["intent"].to_numpy()
    weakened = predicted.copy()
    compliance = np.flatnonzero(truth == "compliance_query")
    weakened[compliance[: int(len(compliance) * 0.2)]] = "how_to"
    decision = decide(truth, weakened, baseline=rules)
    assert not decision.promote
    assert decision.metrics["compliance_recall"] < 0.9
    assert any("beats the keyword baseline" in r for r in decision.reasons)  # macro-F1 alone would pass
    assert any("below the 0.90 threshold" in r and "legal" in r for r in decision.reasons)
    assert decide(truth, weakened, baseline=rules, compliance_recall=0.7).promote


def test_calibrated_probabilities_are_sane_on_later_tickets(world):
    _, test, classifier, predicted, _ = world
    truth = test["intent"].to_numpy()
    calibrated = classifier.predict_proba(test)
    raw = classifier.uncalibrated_proba(test)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert (classifier.classes[calibrated.argmax(axis=1)] == classifier.classes[raw.argmax(axis=1)]).all()
    brier = multiclass_brier(truth, calibrated, classifier.classes)
    assert brier <= multiclass_brier(truth, raw, classifier.classes) + 0.005
    assert brier < 0.1
    correct = (predicted == truth).astype(float)
    assert expected_calibration_error(correct, calibrated.max(axis=1)) < 0.05


def test_threshold_is_the_lowest_that_keeps_the_target_precision():
    classes = np.array(["a", "b"], dtype=object)
    proba = np.array([[0.99, 0.01], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.55, 0.45]])
    truth = np.array(["a", "a", "b", "a", "b"], dtype=object)  # the two least confident are wrong
    assert choose_threshold(proba, truth, classes, target_precision=1.0) == (0.8, True)
    assert choose_threshold(proba, truth, classes, target_precision=0.6) == (0.55, True)
    assert choose_threshold(proba[3:], truth[3:], classes, target_precision=0.9) == (0.6, False)


def test_triage_sends_low_confidence_to_humans_and_keeps_the_rest_precise(world):
    _, test, classifier, predicted, _ = world
    assert classifier.target_reached and 1 / len(classifier.classes) < classifier.threshold < 1.0
    routed = classifier.triage(test)
    truth = test["intent"]
    humans = routed["to_human"]
    assert 0.01 < humans.mean() < 0.25
    assert (routed.loc[humans, "confidence"] < classifier.threshold).all()
    automatic = (routed.loc[~humans, "intent"] == truth[~humans]).mean()
    assert automatic >= classifier.target_precision - 0.02
    assert automatic > (predicted == truth.to_numpy()).mean()
    assert (routed.loc[humans, "intent"] == truth[humans]).mean() < automatic - 0.2


def test_round_trip_through_bytes_predicts_the_same(world):
    _, test, classifier, _, _ = world
    data = classifier.to_bytes()
    again = IntentClassifier.from_bytes(data)
    np.testing.assert_array_equal(again.predict_proba(test), classifier.predict_proba(test))
    assert again.threshold == classifier.threshold
    pd.testing.assert_frame_equal(again.triage(test), classifier.triage(test))
    with pytest.raises(ValueError, match="format tag"):
        IntentClassifier.from_bytes(b"not a model")


def test_gate_refuses_when_the_window_holds_no_compliance_ticket(world):
    _, test, _, predicted, rules = world
    keep = (test["intent"] != "compliance_query").to_numpy()
    decision = decide(test["intent"].to_numpy()[keep], predicted[keep], baseline=rules[keep])
    assert not decision.promote
    assert any("no compliance_query ticket" in r for r in decision.reasons)
