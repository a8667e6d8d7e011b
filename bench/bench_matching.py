"""Matching throughput: companies scored per second and (company, grant) pairs scored per second.

    uv run python bench/bench_matching.py [--companies 2000] [--grants 20000] [--dim 384] [--chunk 50]

Synthetic data shaped like production (unit embeddings, 30 countries, 20 sectors, deadlines over
the next six months, 10% closed), scored in chunks exactly as ``matching.calculate_matches_chunk``
does: one grant matrix per run, one matrix product per chunk, reasons for the top N only.
Database time is not included: this measures the scoring the worker does between reads and writes.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from taskfleet_worker_matching.scoring import CompanyProfile, GrantMatrix, GrantRow, top_matches

COUNTRIES = [f"C{i:02d}" for i in range(30)]
SECTORS = [f"sector-{i}" for i in range(20)]


def synthetic(companies: int, grants: int, dim: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    now = datetime(2026, 6, 1, tzinfo=UTC)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    g_emb, c_emb = unit(grants), unit(companies)
    rows = []
    for i in range(grants):
        countries = frozenset(rng.choice(COUNTRIES, size=rng.integers(0, 5), replace=False).tolist())
        sectors = frozenset(rng.choice(SECTORS, size=rng.integers(0, 4), replace=False).tolist())
        days = float(rng.uniform(-18, 180))
        deadline = None if i % 10 == 0 else now + timedelta(days=days)
        rows.append(GrantRow(i + 1, f"grant {i + 1}", countries, sectors, deadline, g_emb[i]))
    profiles = [
        CompanyProfile(
            i + 1,
            str(rng.choice(COUNTRIES)),
            frozenset(rng.choice(SECTORS, size=rng.integers(1, 4), replace=False).tolist()),
            c_emb[i],
        )
        for i in range(companies)
    ]
    return profiles, rows, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=2000)
    parser.add_argument("--grants", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--top-n", type=int, default=50)
    opts = parser.parse_args()

    profiles, rows, now = synthetic(opts.companies, opts.grants, opts.dim)
    started = time.perf_counter()
    matrix = GrantMatrix(rows, now)
    built = time.perf_counter()
    kept = 0
    for start in range(0, len(profiles), opts.chunk):
        result = top_matches(profiles[start : start + opts.chunk], matrix, opts.top_n)
        kept += sum(len(m) for m in result.values())
    done = time.perf_counter()

    scoring = done - built
    print(f"companies={opts.companies} grants={opts.grants} dim={opts.dim} chunk={opts.chunk} top_n={opts.top_n}")
    print(f"grant matrix built in {built - started:.2f}s")
    print(f"scored in {scoring:.2f}s (+ matrix build: {done - started:.2f}s); kept {kept} matches")
    print(f"companies/s: {opts.companies / scoring:,.0f}")
    print(f"grants/s (company x grant pairs scored): {opts.companies * opts.grants / scoring:,.0f}")


if __name__ == "__main__":
    main()
