"""The FAQ model: trains fast, offline, and finds answers for paraphrased questions."""

from __future__ import annotations

import importlib.util
import time

import pytest

from surge.agent.faq import FALLBACK_ID, TfidfFaq, build_model, features, load_faq

# Written without looking at the dataset's alternates, and kept as written: the
# model gets 28 of these 33 right (the misses need synonyms it cannot know,
# e.g. "cracked" for damaged). The bar guards against regressions.
HELD_OUT = {
    "my order never showed up, where is it": "order-status",
    "I'd like to cancel the order I placed this morning": "order-cancel",
    "one thing was missing from the box": "order-missing-item",
    "the screen was cracked when I opened the parcel": "order-damaged",
    "how do I return a jacket that doesn't fit": "return-how",
    "do I pay for the return label": "return-cost",
    "it's been two weeks and still no refund": "refund-time",
    "can I swap these shoes for a larger size": "exchange",
    "how many days does standard delivery take": "shipping-time",
    "what does express shipping cost": "shipping-express",
    "do you ship to the united states": "shipping-international",
    "I typed the wrong address for delivery": "shipping-address-change",
    "the tracking says delivered but nothing is here": "shipping-lost",
    "can i collect my order from a locker": "shipping-pickup",
    "I can't remember my password": "account-password",
    "how do I change the email I log in with": "account-email",
    "please delete all my data": "account-delete",
    "set up an authenticator app": "account-2fa",
    "someone placed orders on my account that I didn't make": "account-hacked",
    "do you take apple pay": "billing-methods",
    "there are two identical charges on my statement": "billing-charged-twice",
    "I need an invoice with my VAT number": "billing-invoice",
    "my credit card keeps getting rejected": "billing-declined",
    "can I spread the cost over three months": "billing-installments",
    "the promo code says invalid": "billing-promo",
    "how much is left on my gift card": "billing-gift-card",
    "when is this sold out item coming back": "product-stock",
    "is there a guarantee on this blender": "product-warranty",
    "what size should I order": "product-size",
    "can I call someone": "contact-human",
    "are you open on sundays": "support-hours",
    "tell me a joke about penguins": FALLBACK_ID,
    "what's the capital of peru": FALLBACK_ID,
}


@pytest.fixture(scope="module")
def model() -> TfidfFaq:
    return TfidfFaq(load_faq())


def test_dataset_is_bundled_and_well_formed() -> None:
    entries = load_faq()
    assert 30 <= len(entries) <= 60
    ids = [e.id for e in entries]
    assert len(set(ids)) == len(ids)
    topics = {e.topic for e in entries}
    assert {"orders", "returns", "shipping", "accounts", "billing"} <= topics


def test_trains_well_under_a_second() -> None:
    start = time.perf_counter()
    TfidfFaq(load_faq())
    assert time.perf_counter() - start < 0.5


def test_every_canonical_question_maps_to_itself(model: TfidfFaq) -> None:
    for entry in load_faq():
        assert model.answer(entry.question).id == entry.id, entry.question


def test_held_out_paraphrases(model: TfidfFaq) -> None:
    hits = [q for q, want in HELD_OUT.items() if model.answer(q).id == want]
    assert len(hits) >= 27, sorted(set(HELD_OUT) - set(hits))


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("how long until i get my money back", "refund-time"),
        ("reset pasword", "account-password"),  # typo
        ("do u ship to canada", "shipping-international"),
        ("my card got billed 2 times", "billing-charged-twice"),
        ("speak with a real person", "contact-human"),
    ],
)
def test_answers_carry_the_entry(model: TfidfFaq, query: str, want: str) -> None:
    answer = model.answer(query)
    assert answer.id == want
    assert 0.2 <= answer.score <= 1.0
    assert answer.answer == next(e.answer for e in load_faq() if e.id == want)


def test_features_drop_stop_words_and_stem() -> None:
    feats = features("Where are my Returns?")
    assert "w:return" in feats
    assert not any(f in feats for f in ("w:where", "w:are", "w:my"))


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="sentence-transformers is installed, so the guard cannot trigger",
)
def test_transformer_model_is_import_guarded() -> None:
    with pytest.raises(RuntimeError, match="sentence-transformers"):
        build_model("transformer", "all-MiniLM-L6-v2")


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model("gpt")
