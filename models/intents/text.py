"""Generated ticket subjects and bodies for a known intent, with the noise real tickets carry.

Pure and seeded: the same frame and seed give the same text. `ticket_text(frame, seed)` takes a
frame of tickets with an `intent` column (one of `INTENT_NAMES`) and returns, row for row,
`subject`, `body`, `secondary_intent` (the other intent whose phrases were mixed in, or None)
and `typos` (how many character swaps or drops were applied). `generate_tickets(n, seed)` makes a
whole frame (ticket id, creation time, intent, text) for the tests and the benchmark.

**What the text holds.** Each intent has its own subjects and sentences, written as customers
write them: some name the thing outright ("refund", "GDPR", "503"), many do not ("my card shows
two payments", "how long do you keep backups of our records"), so a keyword list catches only part of
them. Around them: greetings and signatures (names, titles, "Sent from my iPhone"), product
names (`PRODUCTS`) and error codes (`ERROR_CODES`, for `bug`, `api_error` and `outage`), filler
sentences that say nothing about the intent, short (one sentence), medium and long texts.

**Noise** (shares are module constants): `MIXED_SHARE` of tickets carry one sentence of a second
intent (a billing dispute that also says "We have decided to move to another provider.");
`TYPO_SHARE` carry one to three typos (two adjacent letters swapped or one letter dropped);
`VAGUE_SHARE` are vague (a subject such as "Urgent", a body of filler only) and say nothing of
their intent, so no classifier can place them; some subjects are shouted in capitals or
end in "!!!" or "??", some bodies are all lower case.

**Intent shares are the caller's.** The frame arrives with its intents already drawn. A world
generator ties them to its latent state by drawing each ticket's intent from weights that move
with it, e.g. for an account in a pain episode multiply the weights of `bug`, `api_error` and
`outage` (say x4), under price pressure those of `billing_dispute` and `cancellation_intent`,
keep `compliance_query` and `fraud_report` rare and independent of health, then normalise and
draw before calling `ticket_text`. `draw_intents` does exactly that, vectorised: base shares
(`BASE_SHARES`) times `PAIN_BOOST` where an account is in pain and `PRICE_BOOST` where it is
under price pressure.

**Speed.** Choices are drawn as numpy arrays and the strings joined in one pass: 500,000
tickets take 3.5-4 s on one core of a 2-core machine (measured with `benchmark_rate`).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

#: Every intent, with what it means: the one place the names are declared.
INTENTS: dict[str, str] = {
    "compliance_query": "a legal, regulatory or audit question: GDPR, data residency, DPA, SOC 2, retention, deletion requests",
    "fraud_report": "suspected fraud or account compromise: unknown logins, card misuse, phishing in the customer's name",
    "billing_dispute": "a contested charge: double billing, wrong amount, refund or chargeback demands",
    "bug": "the product misbehaves: wrong results, broken screens, crashes in a feature",
    "api_error": "an integration fails: API calls answer with errors, rate limits, auth or webhook failures",
    "outage": "the service is down or unreachable for many users at once",
    "how_to": "a question on how to do something in the product",
    "cancellation_intent": "the customer wants to cancel, downgrade or not renew",
}
INTENT_NAMES: tuple[str, ...] = tuple(INTENTS)

#: Shares of intents on a healthy account, before the latent state moves them.
BASE_SHARES: dict[str, float] = {"compliance_query": 0.04, "fraud_report": 0.02, "billing_dispute": 0.10, "bug": 0.20,
                                 "api_error": 0.12, "outage": 0.04, "how_to": 0.42, "cancellation_intent": 0.06}
#: Multipliers of intent weights in a pain episode, and under price pressure.
PAIN_BOOST: dict[str, float] = {"bug": 4.0, "api_error": 3.0, "outage": 4.0}
PRICE_BOOST: dict[str, float] = {"billing_dispute": 4.0, "cancellation_intent": 3.0}

#: Share of tickets with one sentence of a second intent mixed in.
MIXED_SHARE = 0.15
#: Share of tickets with typos (one to three each).
TYPO_SHARE = 0.35
#: Share of tickets whose text does not say their intent (a vague subject, a body of filler only:
#: "Please call me back."), as a few real tickets do; no classifier can place them.
VAGUE_SHARE = 0.04
#: Shares of short (one intent sentence), medium and long tickets.
LENGTH_SHARES = (0.3, 0.5, 0.2)

PRODUCTS = ("Dashboard", "Reports", "billing portal", "API v2", "SSO", "mobile app", "Webhooks",
            "data export", "Workflow Builder", "Analytics", "user admin", "CSV import")
ERROR_CODES = ("HTTP 500", "HTTP 502", "503 Service Unavailable", "ERR-4031", "E1107", "401 Unauthorized",
               "429 Too Many Requests", "ETIMEDOUT", "ERR_CONNECTION_RESET", "E2290", "504 Gateway Timeout")
NAMES = ("Maria", "Tom", "J. Smith", "Priya", "Kenji", "Anna K.", "Luis", "Sam", "Olga", "Dev")
TITLES = ("Ops Lead", "CFO", "IT Admin", "Head of Finance", "Engineering Manager", "Office Manager", "")

_SUBJECTS: dict[str, tuple[str, ...]] = {
    "compliance_query": ("GDPR question", "Data processing agreement", "Where is our data stored",
                         "SOC 2 report request", "Data retention policy", "Request to delete personal data",
                         "Question from our legal team", "Audit documentation", "Subprocessor list",
                         "HIPAA / compliance question", "Data residency EU"),
    "fraud_report": ("Suspicious login on our account", "Unauthorized charges", "Possible fraud",
                     "Someone accessed our account", "Phishing email pretending to be you",
                     "Card used without permission", "Account compromised?", "Strange activity"),
    "billing_dispute": ("Charged twice", "Wrong invoice amount", "Refund request", "Incorrect charge",
                        "Invoice dispute", "Billing error on last invoice", "We were overcharged",
                        "Chargeback", "Why is my bill higher"),
    "bug": ("{product} not working", "Bug in {product}", "{product} shows wrong numbers",
            "{product} crashes", "Broken button in {product}", "Issue with {product}", "{code} in {product}",
            "Problem after update"),
    "api_error": ("API returning {code}", "{code} from API", "Webhook failures", "Integration broken",
                  "API authentication failing", "Rate limit errors", "API calls timing out", "{code} on /v2/orders"),
    "outage": ("Site down", "Service unavailable", "Is {product} down?", "Nobody can log in", "Outage?",
               "Everything is down", "{code} for all users", "Platform not loading"),
    "how_to": ("How do I export data", "Question about {product}", "How to add users", "Setting up {product}",
               "Help with configuration", "Where do I find the settings", "Quick question", "How to change my plan"),
    "cancellation_intent": ("Cancel subscription", "We want to cancel", "Not renewing", "Downgrade request",
                            "Close our account", "Ending our contract", "Cancellation", "Moving to another vendor"),
}

_SENTENCES: dict[str, tuple[str, ...]] = {
    "compliance_query": (
        "Our legal team needs a copy of your data processing agreement before we can continue.",
        "Can you confirm in which region our customer data is stored?",
        "We need to know how you handle GDPR deletion requests.",
        "Our auditors are asking for your latest SOC 2 Type II report.",
        "Please send us the list of subprocessors you use.",
        "How long do you keep backups of our records after we delete them?",
        "A customer has asked us to erase all of their personal data, what is the process?",
        "We are preparing for an audit and need your security and privacy documentation.",
        "Is the service compliant with HIPAA, we handle patient information.",
        "Our DPO wants to understand where the data leaves the EU.",
        "We received a right-to-access request and need an export of everything you hold on one person.",
        "Could you tell us what certifications you hold, our procurement needs this by Friday.",
    ),
    "fraud_report": (
        "We see logins from a country where we have no staff.",
        "There are charges on our card that nobody here made.",
        "One of our users received an email asking for their password that looks like it came from you.",
        "Someone changed the admin email on our account without our knowledge.",
        "I think our account has been hacked.",
        "An unknown user was added to our workspace last night.",
        "Our bank flagged a payment to you as suspicious, we did not authorise it.",
        "Somebody is using our company name to sign up and send invoices.",
        "Please lock the account, we believe the credentials were stolen.",
        "There were password reset emails none of us requested.",
    ),
    "billing_dispute": (
        "We were charged twice for the same month.",
        "The invoice shows 50 seats but we only have 20.",
        "Please refund the last payment, it was taken after we changed plans.",
        "My card shows two payments for one invoice.",
        "The amount on the invoice does not match the price we agreed.",
        "We will file a chargeback with our bank if this is not corrected.",
        "Why did our bill go up this month without any notice?",
        "We were billed for the annual plan although we are on monthly.",
        "The discount from our contract was not applied.",
        "Please credit the difference to our account.",
    ),
    "bug": (
        "When I click save in {product} nothing happens.",
        "{product} shows different totals than the export.",
        "The page crashes as soon as I open {product}.",
        "Since the last update the filters in {product} are ignored.",
        "I get {code} when I try to open a record in {product}.",
        "The chart is empty although there is data for the period.",
        "Dates are shown one day off in {product}.",
        "The button is greyed out even for admins.",
        "Sorting by name puts some rows in the wrong place.",
        "It worked yesterday and today it just spins forever.",
    ),
    "api_error": (
        "Our integration gets {code} on every call to the orders endpoint.",
        "The API started answering {code} after we rotated the token.",
        "Webhooks stopped arriving at our endpoint since this morning.",
        "We are being rate limited although we send far fewer requests than the documented limit.",
        "POST /v2/contacts returns {code} with an empty body.",
        "Our sync job fails with {code} about half the time.",
        "The OAuth token refresh fails and our connector disconnects.",
        "Pagination in the API returns the same page twice.",
        "Our developers see {code} from the sandbox too.",
        "The client library throws a timeout on large requests.",
    ),
    "outage": (
        "None of our users can reach the site right now.",
        "Everything returns {code}, the whole team is blocked.",
        "The platform has been down for 20 minutes.",
        "Is there an outage? Nothing loads for anyone in our office.",
        "All our locations report that the service is unavailable.",
        "Login page does not load at all, on every browser.",
        "Your status page says all systems operational but nothing works.",
        "We cannot access anything since 9am, this is critical.",
        "The app is completely unreachable from our network and from mobile.",
    ),
    "how_to": (
        "How do I export all records to CSV?",
        "Where can I change the notification settings in {product}?",
        "Is it possible to add a new user without admin rights?",
        "Can you point me to a guide for setting up {product}?",
        "What is the best way to import our old data?",
        "How do I change the owner of a workspace?",
        "Can I schedule a report to be emailed every Monday?",
        "Is there a way to customise the fields on the form?",
        "I would like to connect {product} to our calendar, how?",
        "Could you explain how permissions work for teams?",
    ),
    "cancellation_intent": (
        "We would like to cancel our subscription at the end of the term.",
        "Please do not renew our contract.",
        "We have decided to move to another provider.",
        "How do we close our account and get our data out?",
        "We want to downgrade to the free plan.",
        "The tool no longer fits our needs and we are going to stop using it.",
        "Our budget was cut and we cannot continue next year.",
        "Please let me know the notice period to terminate.",
        "We are reducing our seats to the minimum and then leaving.",
    ),
}

_GREETINGS = ("", "Hi,", "Hi team,", "Hello,", "Hey support", "Good morning,", "Dear Support Team,",
              "Hello there,", "hi")
_FILLER = ("This is quite urgent for us.", "We have been customers for years.",
           "Let me know if you need anything else.", "I already checked the documentation.",
           "Screenshot attached.", "My colleague reported this too.", "Thanks in advance for your help.",
           "Please get back to me today.", "Our account number is in the signature.",
           "I tried in another browser, same thing.")
_SIGNOFFS = ("", "Thanks,", "Best regards,", "Kind regards,", "Cheers,", "Thank you,", "Regards,")
_VAGUE_SUBJECTS = ("Urgent", "Help needed", "Following up", "Question", "Please call me", "Re: your email",
                   "Account", "Need help asap", "(no subject)")
_SUBJECT_ENDS = ("", "", "", "!!!", "??", "!", " - urgent", " (again)")


def _fill(template: str, product: str, code: str) -> str:
    return template.format(product=product, code=code) if "{" in template else template


def _typo(text: str, u: np.ndarray) -> tuple[str, int]:
    """`text` with one typo per value in `u` (uniforms in [0, 1)): the value places the typo and
    its trailing digits choose between swapping the letter with the next one and dropping it.
    Positions that are not between two different letters are skipped, so the count returned is
    what was applied."""
    applied = 0
    for value in u:
        n = len(text)
        if n < 4:
            break
        i = int(value * (n - 1))
        a, b = text[i], text[i + 1]
        if not (a.isalpha() and b.isalpha()) or a == b:
            continue
        if (value * 1e6) % 1 < 0.5:
            text = text[:i] + b + a + text[i + 2:]
        else:
            text = text[:i] + text[i + 1:]
        applied += 1
    return text, applied


def _pick(rng: np.random.Generator, options: tuple[str, ...], n: int) -> np.ndarray:
    return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]


def ticket_text(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """`subject`, `body`, `secondary_intent` and `typos` for each row of `frame` (its `intent`
    column drawn by the caller), on `frame`'s index. Deterministic for a frame and seed."""
    intents = frame["intent"].astype(str).to_numpy()
    unknown = sorted(set(intents) - set(INTENT_NAMES))
    if unknown:
        raise ValueError(f"unknown intents {unknown}; known: {', '.join(INTENT_NAMES)}")
    n = len(intents)
    rng = np.random.default_rng(seed)
    products = _pick(rng, PRODUCTS, n)
    codes = _pick(rng, ERROR_CODES, n)
    lengths = rng.choice(3, size=n, p=LENGTH_SHARES)
    sentence_counts = np.where(lengths == 0, 1, np.where(lengths == 1, rng.integers(2, 4, n), rng.integers(4, 6, n)))
    filler_counts = np.where(lengths == 2, rng.integers(1, 3, n), rng.integers(0, 2, n) * (lengths == 1))
    mixed = rng.random(n) < MIXED_SHARE
    others = rng.integers(1, len(INTENT_NAMES), n)
    codes_of = {name: i for i, name in enumerate(INTENT_NAMES)}
    intent_codes = np.fromiter((codes_of[x] for x in intents), dtype=np.int64, count=n)
    secondary = np.where(mixed, (intent_codes + others) % len(INTENT_NAMES), -1)
    greetings = _pick(rng, _GREETINGS, n)
    signoffs = _pick(rng, _SIGNOFFS, n)
    names = _pick(rng, NAMES, n)
    titles = _pick(rng, TITLES, n)
    signature_kind = rng.integers(0, 4, n)
    subject_ends = _pick(rng, _SUBJECT_ENDS, n)
    shout = rng.random(n) < 0.08
    lower_body = rng.random(n) < 0.06
    typo_counts = np.where(rng.random(n) < TYPO_SHARE, rng.integers(1, 4, n), 0)
    typo_draws = rng.random((n, 3))
    sentence_draws = rng.integers(0, 1 << 30, (n, 6))
    filler_draws = rng.integers(0, len(_FILLER), (n, 2))
    subject_draws = rng.integers(0, 1 << 30, n)
    mix_draws = rng.integers(0, 1 << 30, n)
    mix_at_end = rng.random(n) < 0.3
    vague = rng.random(n) < VAGUE_SHARE
    vague_subjects = _pick(rng, _VAGUE_SUBJECTS, n)

    subjects: list[str] = []
    bodies: list[str] = []
    applied_typos = np.zeros(n, dtype=np.int64)
    for i in range(n):
        intent, product, code = intents[i], products[i], codes[i]
        subject_bank = _SUBJECTS[intent]
        subject = _fill(subject_bank[subject_draws[i] % len(subject_bank)], product, code) + subject_ends[i]
        if shout[i]:
            subject = subject.upper()
        bank = _SENTENCES[intent]
        count = min(int(sentence_counts[i]), len(bank))
        start = sentence_draws[i, 0] % len(bank)
        step = 1 + sentence_draws[i, 1] % (len(bank) - 1)
        parts = [_fill(bank[(start + k * step) % len(bank)], product, code) for k in range(count)]
        if len(set(parts)) < len(parts):
            parts = list(dict.fromkeys(parts))
        parts.extend(_FILLER[filler_draws[i, k]] for k in range(int(filler_counts[i])))
        if vague[i]:
            subject, parts = vague_subjects[i], [_FILLER[filler_draws[i, 0]], _FILLER[filler_draws[i, 1]]]
        if secondary[i] >= 0:
            other = _SENTENCES[INTENT_NAMES[secondary[i]]]
            mixed_sentence = _fill(other[mix_draws[i] % len(other)], product, code)
            if mix_at_end[i]:
                parts.append(mixed_sentence)
            else:
                parts.insert(1, mixed_sentence)
        text = " ".join(parts)
        if typo_counts[i]:
            text, applied_typos[i] = _typo(text, typo_draws[i, : typo_counts[i]])
        if lower_body[i]:
            text = text.lower()
        lines = [greetings[i], text] if greetings[i] else [text]
        kind = signature_kind[i]
        if kind == 1:
            lines.append(f"{signoffs[i]}\n{names[i]}".strip())
        elif kind == 2:
            lines.append(f"{signoffs[i]}\n{names[i]}\n{titles[i]}".strip())
        elif kind == 3:
            lines.append("Sent from my iPhone")
        subjects.append(subject)
        bodies.append("\n\n".join(lines))
    return pd.DataFrame({
        "subject": subjects,
        "body": bodies,
        "secondary_intent": [INTENT_NAMES[s] if s >= 0 else None for s in secondary],
        "typos": applied_typos,
    }, index=frame.index)


def generate_tickets(n: int, seed: int, *, shares: dict[str, float] | None = None,
                     start: str = "2026-01-01", days: int = 180) -> pd.DataFrame:
    """`n` tickets: `ticket_id`, `created_at` (spread over `days` from `start`, in time order),
    `intent` (drawn with `shares`, default equal), then the columns of `ticket_text`."""
    rng = np.random.default_rng(seed)
    weights = np.array([(shares or {}).get(name, 0.0 if shares else 1.0) for name in INTENT_NAMES], dtype=float)
    if weights.sum() <= 0:
        raise ValueError("intent shares must give some intent a positive weight")
    intents = rng.choice(np.asarray(INTENT_NAMES, dtype=object), size=n, p=weights / weights.sum())
    seconds = np.sort(rng.integers(0, days * 86_400, n))
    frame = pd.DataFrame({
        "ticket_id": [f"T{i:07d}" for i in range(n)],
        "created_at": pd.Timestamp(start) + pd.to_timedelta(seconds, unit="s"),
        "intent": intents,
    })
    return pd.concat([frame, ticket_text(frame, seed + 1)], axis=1)


def draw_intents(pain: np.ndarray, price_pressure: np.ndarray, seed: int) -> np.ndarray:
    """One intent per ticket, drawn from `BASE_SHARES` moved by the ticket's account state:
    `pain` and `price_pressure` are booleans per ticket (True: the boosts apply)."""
    pain, price = np.asarray(pain, dtype=bool), np.asarray(price_pressure, dtype=bool)
    base = np.array([BASE_SHARES[name] for name in INTENT_NAMES])
    weights = np.tile(base, (len(pain), 1))
    weights[pain] *= np.array([PAIN_BOOST.get(name, 1.0) for name in INTENT_NAMES])
    weights[price] *= np.array([PRICE_BOOST.get(name, 1.0) for name in INTENT_NAMES])
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    u = np.random.default_rng(seed).random(len(pain))[:, None]
    picks = np.minimum((u > cumulative).sum(axis=1), len(INTENT_NAMES) - 1)
    return np.asarray(INTENT_NAMES, dtype=object)[picks]


def benchmark_rate(n: int = 500_000, seed: int = 0) -> float:
    """Seconds `ticket_text` takes for `n` tickets (equal intent shares)."""
    frame = pd.DataFrame({"intent": np.resize(np.asarray(INTENT_NAMES, dtype=object), n)})
    began = time.perf_counter()
    ticket_text(frame, seed)
    return time.perf_counter() - began
