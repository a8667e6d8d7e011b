"""Cross-source deduplication: one canonical grant per real-world project, the others linked to it.

Two grants of different sources are the same project when their funder matches (normalised)
and either (a) title and amount match after normalisation, or (b) their titles' embeddings
are at least ``threshold`` similar, the amounts agree within 1 % (or one is unknown) and the
numbers in the titles agree ("phase 2" is not "phase 3"). Grants of one source are never
merged: within a source, an external id is one project. The canonical grant is the one from
the funder's own source (GCF, World Bank, CORDIS, EU portal before IATI, which aggregates
other funders' reports); the others get ``duplicate_of_id``. Re-running recomputes the links
from scratch, so it is idempotent and also unlinks grants that no longer match.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from taskfleet_data.embeddings import get_embedder
from taskfleet_data.models import Grant

#: Which source's record wins: the funder's own publication over an aggregator's.
SOURCE_PRIORITY = {"gcf": 0, "world_bank": 1, "cordis": 2, "eu_portal": 3, "iati": 4}
FUNDER_ALIASES = {
    "international bank for reconstruction and development": "world bank",
    "international development association": "world bank",
    "the world bank": "world bank",
    "gcf": "green climate fund",
    "european union": "european commission",
    "ec": "european commission",
}
FILLER = re.compile(r"\b(project|programme|program|initiative)\b")
BLOCK = 2048


@dataclass
class Candidate:
    id: int
    source: str
    title: str
    funder: str
    amount: Decimal | None
    linked_to: int | None


def normalise_text(value: str | None) -> str:
    value = unicodedata.normalize("NFKD", value or "").encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", value).split())


def normalise_funder(value: str | None) -> str:
    name = normalise_text(value)
    return FUNDER_ALIASES.get(name, name)


def _amounts_agree(a: Decimal | None, b: Decimal | None) -> bool:
    if a is None or b is None:
        return True
    return abs(a - b) <= Decimal("0.01") * max(abs(a), abs(b))


def _numbers(title: str) -> frozenset[str]:
    return frozenset(re.findall(r"\d+", title))


class _Groups:
    """Union-find over grant ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


async def deduplicate(session: AsyncSession, threshold: float = 0.92) -> dict[str, int]:
    """Recompute duplicate links over all grants; returns counts. Commits."""
    rows = await session.execute(
        select(Grant.id, Grant.source, Grant.title, Grant.funder, Grant.amount, Grant.duplicate_of_id)
    )
    grants = [
        Candidate(r.id, r.source, normalise_text(r.title), normalise_funder(r.funder), r.amount, r.duplicate_of_id)
        for r in rows
    ]
    groups = _Groups()
    pairs_exact, pairs_similar = 0, 0

    exact: dict[tuple[str, str, Decimal | None], list[Candidate]] = defaultdict(list)
    for g in grants:
        amount = g.amount.quantize(Decimal(1)) if g.amount is not None else None
        exact[(g.title, g.funder, amount)].append(g)
    for members in exact.values():
        for other in members[1:]:
            if other.source != members[0].source:
                groups.union(members[0].id, other.id)
                pairs_exact += 1

    embedder = get_embedder()
    by_funder: dict[str, list[Candidate]] = defaultdict(list)
    for g in grants:
        if g.funder:
            by_funder[g.funder].append(g)
    for members in by_funder.values():
        if len({m.source for m in members}) < 2:
            continue
        vectors = embedder.embed([FILLER.sub(" ", m.title) for m in members])
        for start in range(0, len(members), BLOCK):
            sims = vectors[start : start + BLOCK] @ vectors.T
            for i, j in zip(*np.nonzero(sims >= threshold), strict=False):
                a, b = members[start + int(i)], members[int(j)]
                if a.id >= b.id or a.source == b.source:
                    continue
                if _amounts_agree(a.amount, b.amount) and _numbers(a.title) == _numbers(b.title):
                    if groups.find(a.id) != groups.find(b.id):
                        pairs_similar += 1
                    groups.union(a.id, b.id)

    clusters: dict[int, list[Candidate]] = defaultdict(list)
    for g in grants:
        clusters[groups.find(g.id)].append(g)
    desired: dict[int, int | None] = {}
    duplicate_groups = 0
    for members in clusters.values():
        canonical = min(members, key=lambda m: (SOURCE_PRIORITY.get(m.source, 9), m.id))
        if len(members) > 1:
            duplicate_groups += 1
        for m in members:
            desired[m.id] = None if m.id == canonical.id else canonical.id

    linked = unlinked = 0
    for g in grants:
        target = desired[g.id]
        if g.linked_to != target:
            await session.execute(update(Grant).where(Grant.id == g.id).values(duplicate_of_id=target))
            if target is None:
                unlinked += 1
            else:
                linked += 1
    await session.commit()
    total_duplicates = sum(1 for v in desired.values() if v is not None)
    return {
        "grants": len(grants),
        "duplicate_groups": duplicate_groups,
        "duplicates": total_duplicates,
        "newly_linked": linked,
        "unlinked": unlinked,
        "exact_pairs": pairs_exact,
        "similar_pairs": pairs_similar,
    }
