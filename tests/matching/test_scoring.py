"""The scoring formula on a hand-checked example, without database or workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from taskfleet_worker_matching.scoring import (
    CompanyProfile,
    GrantMatrix,
    GrantRow,
    score_matrix,
    sector_words,
    top_matches,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def grant(gid, emb, countries=(), sectors=(), days=60):
    deadline = None if days is None else NOW + timedelta(days=days)
    return GrantRow(gid, f"grant {gid}", frozenset(countries), frozenset(sectors), deadline, emb)


def test_formula_components_by_hand() -> None:
    company = CompanyProfile(1, "DE", frozenset({"energy", "transport"}), [1.0, 0.0])
    grants = GrantMatrix(
        [
            grant(10, [1.0, 0.0], ["DE", "FR"], ["energy"], days=15),  # 1.0 sem, half sectors, 0.5 deadline
            grant(11, [0.0, 1.0], ["KE"], ["energy", "transport"], days=None),  # orthogonal, other country
            grant(12, [1.0, 1.0], [], [], days=-1),  # closed
        ],
        NOW,
    )
    parts = score_matrix([company], grants)
    assert parts["score"][0, 0] == pytest.approx(0.60 * 1.0 + 0.25 * 0.5 + 0.15 * 0.5)
    assert parts["score"][0, 1] == pytest.approx(0.25 * (0.60 * 0.0 + 0.25 * 1.0 + 0.15 * 1.0))
    assert parts["score"][0, 2] == float("-inf")


def test_top_matches_best_first_with_reasons_and_closed_grants_dropped() -> None:
    companies = [
        CompanyProfile(1, "DE", frozenset({"energy"}), [1.0, 0.0, 0.0]),
        CompanyProfile(2, "KE", frozenset({"agriculture"}), [0.0, 0.0, 1.0]),
    ]
    grants = GrantMatrix(
        [
            grant(1, [0.9, 0.1, 0.0], ["DE"], ["energy"]),
            grant(2, [0.0, 0.1, 0.9], ["KE"], ["agriculture"]),
            grant(3, [0.5, 0.5, 0.0], [], []),
            grant(4, [1.0, 0.0, 0.0], ["DE"], ["energy"], days=-3),
        ],
        NOW,
    )
    result = top_matches(companies, grants, top_n=3)
    assert [m.grant_id for m in result[1]] == [1, 3, 2]
    assert [m.grant_id for m in result[2]] == [2, 3, 1]
    best = result[1][0]
    assert best.reasons[0].startswith("Strong topic similarity")
    assert "Open to applicants from DE" in best.reasons and "Sector match: energy" in best.reasons
    assert "Not open to applicants from DE" in result[1][2].reasons


def test_missing_embeddings_and_empty_grant_set() -> None:
    company = CompanyProfile(1, None, frozenset(), None)
    assert top_matches([company], GrantMatrix([], NOW), 5) == {1: []}
    [match] = top_matches([company], GrantMatrix([grant(1, None)], NOW), 5)[1]
    assert match.reasons[0] == "No text similarity yet (embedding missing)"
    assert match.score == pytest.approx(0.25 * 0.5 + 0.15 * 1.0)


def test_a_sector_word_matches_inside_a_longer_label() -> None:
    company = CompanyProfile(1, "DE", sector_words(["Energy"]), None)
    grants = GrantMatrix(
        [GrantRow(1, "g", frozenset(), sector_words(["Energy efficiency", "Smart grids"]), None, None)], NOW
    )
    assert score_matrix([company], grants)["sector"][0, 0] == 1.0
    [match] = top_matches([company], grants, 1)[1]
    assert "Sector match: energy" in match.reasons
