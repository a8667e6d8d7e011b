"""probes.touch from several processes at once: each writes its own temporary file, nobody crashes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from taskfleet_core.observability import probes


def _hammer(path: str, times: int) -> None:
    for _ in range(times):
        probes.touch(Path(path))


def test_processes_touching_one_file_never_collide(tmp_path: Path) -> None:
    path = tmp_path / "health" / "beat.heartbeat"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_hammer, args=(str(path), 1500)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert float(path.read_text()) > 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["beat.heartbeat"], "no temporary file left behind"
