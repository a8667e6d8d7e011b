"""Vectorised match scoring: many companies against every grant in a few numpy operations.

    score = country x (0.60 semantic + 0.25 sector + 0.15 deadline)

* semantic = max(0, cosine(company embedding, grant embedding)); 0 when either has none yet
* sector   = share of the company's sector words the grant's sectors and themes contain ("energy" matches
             "energy efficiency"); 0.5 when either side names none
* deadline = min(1, days left / 30); 1 for an open call without deadline; past deadlines are dropped
* country  = 1 when the grant is open to the company's country (or names no country), else 0.25

A chunk of K companies is one (K, D) x (D, G) matrix product plus boolean matrix products for
countries and sectors, so the grant matrix is built once per chunk, not once per company.
Reasons are written only for the top N a company keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

W_SEMANTIC = 0.60
W_SECTOR = 0.25
W_DEADLINE = 0.15
COUNTRY_MISMATCH = 0.25
NEUTRAL_SECTOR = 0.5
DEADLINE_HORIZON_DAYS = 30.0
#: Cosine similarity bands named in the reasons (tuned on the default hashing embedder).
STRONG_SIMILARITY = 0.4
MODERATE_SIMILARITY = 0.2

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_NOT_A_SECTOR = frozenset(["and", "or", "of", "the", "for", "in", "on", "to", "with", "other", "general"])


#: An embedding: a decoded ``float32`` vector, or plain floats (tests).
Vector = Sequence[float] | np.ndarray


def sector_words(labels: Iterable[str]) -> frozenset[str]:
    """Lower-case words of sector labels: "Renewable Energy" -> {"renewable", "energy"}."""
    return frozenset(w for label in labels for w in _WORD.findall(label.lower()) if w not in _NOT_A_SECTOR)


@dataclass(frozen=True)
class CompanyProfile:
    id: int
    country: str | None
    sectors: frozenset[str]
    embedding: Vector | None


@dataclass(frozen=True)
class GrantRow:
    id: int
    title: str
    countries: frozenset[str]
    #: ``sector_words`` of the grant's sectors and themes
    sectors: frozenset[str]
    deadline: datetime | None
    embedding: Vector | None
    #: the labels as the source gave them, for the reasons
    sector_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    grant_id: int
    score: float
    reasons: list[str]
    components: dict[str, float]


def _normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    normalised: np.ndarray = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return normalised


def _vocabulary(sets: Sequence[frozenset[str]]) -> dict[str, int]:
    return {term: i for i, term in enumerate(sorted({t for s in sets for t in s}))}


def _indicator(sets: Sequence[frozenset[str]], vocabulary: dict[str, int]) -> np.ndarray:
    out = np.zeros((len(sets), max(1, len(vocabulary))), dtype=np.float32)
    for row, terms in enumerate(sets):
        for term in terms:
            col = vocabulary.get(term)
            if col is not None:
                out[row, col] = 1.0
    return out


@dataclass
class GrantMatrix:
    """Every candidate grant as arrays: built once, scored against many companies."""

    grants: list[GrantRow]
    now: datetime
    dim: int = 0
    embeddings: np.ndarray = field(init=False)
    days_left: np.ndarray = field(init=False)
    country_vocab: dict[str, int] = field(init=False)
    sector_vocab: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        dims = {len(g.embedding) for g in self.grants if g.embedding is not None}
        self.dim = self.dim or (max(dims) if dims else 1)
        emb = np.zeros((len(self.grants), self.dim), dtype=np.float32)
        for i, g in enumerate(self.grants):
            if g.embedding is not None and len(g.embedding) == self.dim:
                emb[i] = g.embedding
        self.embeddings = _normalise(emb)
        self.days_left = np.array(
            [np.inf if g.deadline is None else (g.deadline - self.now).total_seconds() / 86400 for g in self.grants],
            dtype=np.float64,
        )
        self.country_vocab = _vocabulary([g.countries for g in self.grants])
        self.countries = _indicator([g.countries for g in self.grants], self.country_vocab)
        self.open_to_all = np.array([not g.countries for g in self.grants], dtype=bool)
        self.sector_vocab = _vocabulary([g.sectors for g in self.grants])
        self.sectors = _indicator([g.sectors for g in self.grants], self.sector_vocab)
        self.no_sectors = np.array([not g.sectors for g in self.grants], dtype=bool)
        self.open = self.days_left >= 0
        self.deadline_score = np.where(
            np.isinf(self.days_left), 1.0, np.clip(self.days_left / DEADLINE_HORIZON_DAYS, 0.0, 1.0)
        ).astype(np.float32)

    def __len__(self) -> int:
        return len(self.grants)


def score_matrix(companies: Sequence[CompanyProfile], grants: GrantMatrix) -> dict[str, np.ndarray]:
    """(K, G) arrays: the final score (-inf where a grant is closed) and each component."""
    k, g = len(companies), len(grants)
    if g == 0:
        empty = np.zeros((k, 0))
        return {"score": empty, "semantic": empty, "sector": empty, "deadline": empty, "country": empty}

    comp = np.zeros((k, grants.dim), dtype=np.float32)
    for i, c in enumerate(companies):
        if c.embedding is not None and len(c.embedding) == grants.dim:
            comp[i] = c.embedding
    semantic = np.clip(_normalise(comp) @ grants.embeddings.T, 0.0, 1.0)

    # country: open to all, or the company's country among the grant's
    country_ok = np.repeat(grants.open_to_all[None, :], k, axis=0)
    for i, c in enumerate(companies):
        col = grants.country_vocab.get(c.country or "")
        if col is not None:
            country_ok[i] |= grants.countries[:, col] > 0
    country = np.where(country_ok, np.float32(1.0), np.float32(COUNTRY_MISMATCH))

    # sector: share of the company's sectors the grant names
    comp_sectors = _indicator([c.sectors for c in companies], grants.sector_vocab)
    n_sectors = np.array([len(c.sectors) for c in companies], dtype=np.float32)
    overlap = comp_sectors @ grants.sectors.T
    sector = np.divide(overlap, n_sectors[:, None], out=np.zeros_like(overlap), where=n_sectors[:, None] > 0)
    neutral = grants.no_sectors[None, :] | (n_sectors[:, None] == 0)
    sector = np.where(neutral, np.float32(NEUTRAL_SECTOR), sector)

    deadline = np.broadcast_to(grants.deadline_score, (k, g))
    score = country * (W_SEMANTIC * semantic + W_SECTOR * sector + W_DEADLINE * deadline)
    score = np.where(grants.open[None, :], score, np.float32(-np.inf))
    return {"score": score, "semantic": semantic, "sector": sector, "deadline": deadline, "country": country}


def _reasons(company: CompanyProfile, grant: GrantRow, parts: dict[str, float], days_left: float) -> list[str]:
    reasons: list[str] = []
    sem = parts["semantic"]
    if company.embedding is None or grant.embedding is None:
        reasons.append("No text similarity yet (embedding missing)")
    else:
        strength = "Strong" if sem >= STRONG_SIMILARITY else "Moderate" if sem >= MODERATE_SIMILARITY else "Weak"
        reasons.append(f"{strength} topic similarity ({sem:.2f})")
    if parts["country"] < 1:
        reasons.append(f"Not open to applicants from {company.country or 'an unknown country'}")
    elif grant.countries:
        reasons.append(f"Open to applicants from {company.country}")
    else:
        reasons.append("Open to applicants from any country")
    shared = sorted(company.sectors & grant.sectors)
    if shared:
        reasons.append(f"Sector match: {', '.join(shared)}")
    elif grant.sectors and company.sectors:
        targets = list(grant.sector_labels or sorted(grant.sectors))
        more = f" and {len(targets) - 3} more" if len(targets) > 3 else ""
        reasons.append(f"No sector overlap (grant targets {', '.join(targets[:3])}{more})")
    if days_left == float("inf"):
        reasons.append("Open call without deadline")
    else:
        reasons.append(f"Deadline in {int(days_left)} days")
    return reasons


def top_matches(companies: Sequence[CompanyProfile], grants: GrantMatrix, top_n: int) -> dict[int, list[Match]]:
    """Each company's best ``top_n`` open grants, best first, with reasons."""
    parts = score_matrix(companies, grants)
    score = parts["score"]
    names = ("semantic", "sector", "deadline", "country")
    ids = np.array([g.id for g in grants.grants], dtype=np.int64)
    days_left = grants.days_left.tolist()
    result: dict[int, list[Match]] = {}
    n = min(top_n, len(grants))
    for i, company in enumerate(companies):
        if n == 0:
            result[company.id] = []
            continue
        row = score[i]
        candidates = np.argpartition(-row, n - 1)[:n] if n < len(row) else np.arange(len(row))
        candidates = candidates[np.isfinite(row[candidates])]
        # best first; ties broken by grant id, so the order is stable across runs
        order = candidates[np.lexsort((ids[candidates], -row[candidates]))]
        scores = row[order].tolist()
        columns = {name: np.broadcast_to(parts[name][i], row.shape)[order].tolist() for name in names}
        matches = []
        for rank, j in enumerate(order.tolist()):
            values = {name: columns[name][rank] for name in names}
            grant = grants.grants[j]
            reasons = _reasons(company, grant, values, days_left[j])
            matches.append(Match(grant.id, round(scores[rank], 6), reasons, values))
        result[company.id] = matches
    return result
