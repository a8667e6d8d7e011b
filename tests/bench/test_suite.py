"""``make bench`` end to end on small counts: every section runs against real processes and prints its figures.

No figure is asserted (absolute numbers depend on the machine); only that each section produced its rows, that
every job it sent was seen, and that the table was written to its file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import suite  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_suite_runs_end_to_end_on_small_counts(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    table = suite.main(["--quick", "--out", str(out)])
    sections = {section.split(" ")[0] for section, *_ in table.rows}
    assert {"drain", "enqueue", "api", "enqueue->start,", "cold", "matching", "sync"} <= sections
    figures = {figure for _, figure, _, _ in table.rows}
    assert "fleet / bare-same: throughput" in figures and "fleet / bare: jobs/s" in figures
    seen = [ratio for section, _, _, ratio in table.rows if section.startswith("enqueue->start")]
    assert seen and all(r.split(" of ")[0] == r.split(" of ")[1].split(" ")[0] for r in seen), seen
    assert not [row for row in table.rows if "errors" in row[3]], "the API refused some submissions"
    text = out.read_text()
    assert text.count("\n|") == len(table.rows) + 2  # the header, its separator, one line per row
