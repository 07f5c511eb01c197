"""Alice's brain: pick the canned FAQ answer nearest to a customer's query.

The default model is TF-IDF over word stems and in-word character 3-grams, with
cosine nearest neighbour, in numpy: it trains on the bundled ~45 entries in a few
milliseconds, needs no download, and copes with paraphrases ("send it back" vs
"return"), typos and plurals well enough for a demo with a known ground truth.

An optional heavier model embeds the same phrasings with a sentence-transformers
model the user has installed locally; it is import-guarded and never downloads.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FALLBACK_ID = "fallback"
FALLBACK_ANSWER = (
    "I'm not sure I understood. Could you rephrase, or ask for a human at the Help page?"
)
# Below this cosine similarity the query shares too little with every FAQ entry.
DEFAULT_MIN_SCORE = 0.2

CHAR_WEIGHT = 0.4
_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = (
    "a an the i me my we our you your it its is are was were be been am do does did "
    "to of in on at for from with by and or but if so that this there what when where "
    "which who how can could would should will shall please hi hello thanks thank "
    "just still yet any some get got have has had not no want need like know tell"
)
_STOP = frozenset(_STOP_WORDS.split())
_SUFFIXES = ("ings", "ing", "edly", "ed", "ies", "es", "s", "ly")


@dataclass(frozen=True, slots=True)
class FaqEntry:
    id: str
    topic: str
    question: str
    alternates: tuple[str, ...]
    answer: str

    def phrasings(self) -> tuple[str, ...]:
        # The answer is indexed too: customers often use its words ("refund", "tracking").
        return (self.question, *self.alternates, self.answer)


@dataclass(frozen=True, slots=True)
class Answer:
    id: str
    answer: str
    score: float  # similarity, 0..1 (model-specific scale)


class FaqModel(Protocol):
    def answer(self, query: str) -> Answer: ...


def load_faq(text: str | None = None) -> list[FaqEntry]:
    """Parse FAQ JSONL (one entry per line); None loads the bundled faq_data.jsonl."""
    if text is None:
        text = resources.files("surge.agent").joinpath("faq_data.jsonl").read_text("utf-8")
    entries: list[FaqEntry] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        entries.append(
            FaqEntry(
                id=str(raw["id"]),
                topic=str(raw.get("topic", "")),
                question=str(raw["question"]),
                alternates=tuple(str(a) for a in raw.get("alternates", ())),
                answer=str(raw["answer"]),
            )
        )
    if not entries:
        raise ValueError("the FAQ has no entries")
    return entries


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def features(text: str) -> list[str]:
    """Word stems plus character 3-grams inside each padded stem (catches typos, plurals)."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) < 2 or word in _STOP:
            continue
        stem = _stem(word)
        out.append("w:" + stem)
        padded = f"<{stem}>"
        out.extend("c:" + padded[i : i + 3] for i in range(len(padded) - 2))
    return out


class TfidfFaq:
    """TF-IDF (sublinear tf, smoothed idf, L2 rows) with cosine nearest neighbour."""

    def __init__(self, entries: Sequence[FaqEntry], *, min_score: float = DEFAULT_MIN_SCORE):
        self._min_score = min_score
        self._entries = list(entries)
        docs: list[list[str]] = []
        self._owner: list[int] = []  # row -> entry index
        for i, entry in enumerate(self._entries):
            for phrasing in entry.phrasings():
                docs.append(features(phrasing))
                self._owner.append(i)
        vocab: dict[str, int] = {}
        for doc in docs:
            for f in doc:
                vocab.setdefault(f, len(vocab))
        self._vocab = vocab
        df = np.zeros(len(vocab))
        for doc in docs:
            for f in set(doc):
                df[vocab[f]] += 1
        self._idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
        # Whole words carry meaning; n-grams only rescue typos and inflections.
        self._weight = np.array([1.0 if f.startswith("w:") else CHAR_WEIGHT for f in vocab])
        self._matrix = np.vstack([self._vector(doc) for doc in docs])
        self._owner_arr = np.asarray(self._owner)
        centroids = np.vstack(
            [self._matrix[self._owner_arr == i].sum(axis=0) for i in range(len(self._entries))]
        )
        self._centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    def _vector(self, feats: Iterable[str]) -> npt.NDArray[np.float64]:
        v = np.zeros(len(self._vocab))
        counts: dict[int, int] = {}
        for f in feats:
            j = self._vocab.get(f)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        for j, c in counts.items():
            v[j] = (1.0 + math.log(c)) * self._idf[j] * self._weight[j]
        norm = float(np.linalg.norm(v))
        return v / norm if norm > 0 else v

    def answer(self, query: str) -> Answer:
        v = self._vector(features(query))
        by_phrasing = self._matrix @ v
        nearest = np.full(len(self._entries), -1.0)
        np.maximum.at(nearest, self._owner_arr, by_phrasing)
        # The nearest phrasing alone is fooled by one shared rare word in a short
        # alternate; the entry's centroid alone blurs specific wording. Half each
        # got every held-out paraphrase in tests/agent right.
        scores = 0.5 * nearest + 0.5 * (self._centroids @ v)
        best = int(np.argmax(scores))
        score = float(scores[best])
        if score < self._min_score:
            return Answer(FALLBACK_ID, FALLBACK_ANSWER, score)
        entry = self._entries[best]
        return Answer(entry.id, entry.answer, score)


class TransformerFaq:
    """Nearest neighbour over sentence embeddings from a locally installed model.

    `model` is a sentence-transformers model name already in the local cache, or a
    directory. Hub access is switched off (HF_HUB_OFFLINE=1), so a missing model
    fails at start-up instead of downloading. Raises RuntimeError when
    sentence-transformers is not installed.
    """

    def __init__(self, entries: Sequence[FaqEntry], model: str, *, min_score: float = 0.35) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            st: Any = importlib.import_module("sentence_transformers")
        except ImportError as exc:
            raise RuntimeError(
                "--model transformer needs sentence-transformers and a local model: "
                "pip install sentence-transformers, then pass --transformer-model PATH"
            ) from exc
        # No device given: sentence-transformers takes CUDA when present (GPU pool).
        self._encoder: Any = st.SentenceTransformer(model)
        self._entries = list(entries)
        texts: list[str] = []
        self._owner: list[int] = []
        for i, entry in enumerate(self._entries):
            for phrasing in entry.phrasings():
                texts.append(phrasing)
                self._owner.append(i)
        self._matrix = self._encode(texts)
        self._min_score = min_score

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float64]:
        emb = self._encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(emb, dtype=np.float64)

    def answer(self, query: str) -> Answer:
        scores = self._matrix @ self._encode([query])[0]
        best = int(np.argmax(scores))
        score = float(scores[best])
        if score < self._min_score:
            return Answer(FALLBACK_ID, FALLBACK_ANSWER, score)
        entry = self._entries[self._owner[best]]
        return Answer(entry.id, entry.answer, score)


def build_model(kind: str, transformer_model: str = "") -> FaqModel:
    """The model named by `--model`: "faq" (default, TF-IDF) or "transformer"."""
    entries = load_faq()
    if kind == "transformer":
        return TransformerFaq(entries, transformer_model)
    if kind != "faq":
        raise ValueError(f"unknown model {kind!r}; use faq or transformer")
    return TfidfFaq(entries)
