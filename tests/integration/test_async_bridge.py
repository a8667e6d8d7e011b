"""The async bridge: both of seed 000's behaviours, and no "Event loop is closed" under prefork (seed 003)."""

import asyncio

import aiosmtplib
from taskfleet_core.tasks.async_bridge import run_async

from tests.integration.helpers import submit, wait_for_job


async def _smtp_noop(port: int) -> int:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5)
    await smtp.connect()
    code, _ = await smtp.noop()
    smtp.close()
    return code


def test_without_a_running_loop_uses_a_fresh_loop_each_time(smtp_server) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def which_loop() -> int:
        loops.append(asyncio.get_running_loop())
        return await _smtp_noop(smtp_server.port)

    assert [run_async(which_loop) for _ in range(3)] == [250, 250, 250]
    assert len({id(loop) for loop in loops}) == 3
    assert all(loop.is_closed() for loop in loops)


def test_inside_a_running_loop_runs_on_a_dedicated_thread(smtp_server) -> None:
    async def caller() -> tuple[int, bool]:
        outer = asyncio.get_running_loop()

        async def inner() -> tuple[int, bool]:
            return await _smtp_noop(smtp_server.port), asyncio.get_running_loop() is not outer

        return run_async(inner)

    code, other_loop = asyncio.run(caller())
    assert code == 250 and other_loop


def test_prefork_children_run_async_code_repeatedly(workers, api) -> None:
    """health_check runs three bridged coroutines per job (Valkey, database, SMTP); 16 jobs over 4 children."""
    worker = workers.ensure("default")
    ids = [submit(api, "maintenance.health_check") for _ in range(16)]
    jobs = [wait_for_job(api, job_id, timeout=60) for job_id in ids]
    assert {job["state"] for job in jobs} == {"SUCCESS"}
    assert all(job["result"]["status"] == "ok" for job in jobs), jobs[0]
    assert "Event loop is closed" not in worker.log()
    assert "attached to a different loop" not in worker.log()
