"""``taskfleet``: the operators' command line over the job API (the same endpoints, the same tokens).

    taskfleet submit maintenance.canary --kwargs '{"steps": 2}' [--countdown 10 | --eta ISO] [--priority 0-9] [--wait]
    taskfleet status JOB_ID [--follow]
    taskfleet jobs [--state FAILURE] [--task NAME] [--queue email] [--since 2026-01-01T00:00:00Z] [--limit 50] [--watch]
    taskfleet dlq [--queue Q] [--reason R] | dlq show ID | dlq replay ID | dlq purge ID
    taskfleet queues

``TASKFLEET_API_URL`` (default ``http://127.0.0.1:8000``) and ``TASKFLEET_API_TOKEN`` (a read token is
enough for status/jobs/queues; submit and dlq need an admin token), or ``--url`` / ``--token``.
Output is JSON. Exit status: 0 done, 1 the API refused (its message on stderr), 2 bad usage,
3 the job ended in FAILURE or REVOKED (``submit --wait``, ``status --follow``).

``status --follow`` and ``jobs --watch`` draw live progress bars (rich, on stderr) from each job's progress meta
(``{"done", "total", "message"}``, FleetTask.report_progress) until the jobs finish; stdout still gets the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from taskfleet_api import progress
from taskfleet_api.progress import FINAL


class ApiError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        try:
            detail: Any = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        super().__init__(f"HTTP {response.status_code}: {json.dumps(detail, ensure_ascii=False)}")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskfleet", description="Taskfleet job API from the command line")
    parser.add_argument("--url", default=os.environ.get("TASKFLEET_API_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("TASKFLEET_API_TOKEN"), help="bearer token")
    commands = parser.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="submit a job by contract name")
    submit.add_argument("task")
    submit.add_argument("--kwargs", type=_json_object, default={}, help="arguments as a JSON object")
    delay = submit.add_mutually_exclusive_group()
    delay.add_argument("--countdown", type=float)
    delay.add_argument("--eta", help="ISO 8601 with a zone")
    submit.add_argument("--priority", type=int, choices=range(10), metavar="0-9")
    submit.add_argument("--wait", action="store_true", help="poll until the job finishes; print its final state")
    submit.add_argument("--timeout", type=float, default=300, help="seconds --wait waits at most")

    status = commands.add_parser("status", help="one job's state, progress, result or error")
    status.add_argument("job_id")
    status.add_argument("--follow", action="store_true", help="a live progress bar until the job finishes")
    status.add_argument("--timeout", type=float, default=3600, help="seconds --follow follows at most")

    jobs = commands.add_parser("jobs", help="jobs by state, task, queue and time, newest first")
    jobs.add_argument("--state")
    jobs.add_argument("--task")
    jobs.add_argument("--queue")
    jobs.add_argument("--since", help="ISO 8601, e.g. 2026-01-01T00:00:00Z")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--offset", type=int, default=0)
    jobs.add_argument("--watch", action="store_true", help="live progress bars until every listed job finished")
    jobs.add_argument("--timeout", type=float, default=3600, help="seconds --watch watches at most")

    dlq = commands.add_parser("dlq", help="dead letters: list (default), show, replay, purge")
    dlq.add_argument("action", nargs="?", choices=["list", "show", "replay", "purge"], default="list")
    dlq.add_argument("entry_id", nargs="?")
    dlq.add_argument("--queue")
    dlq.add_argument("--task")
    dlq.add_argument("--reason")
    dlq.add_argument("--limit", type=int, default=50)

    commands.add_parser("queues", help="waiting, in flight and scheduled per queue")
    return parser


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    response = client.request(method, path, **kwargs)
    if response.status_code >= 400:
        raise ApiError(response)
    return response.json()


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _exit_status(job: dict[str, Any]) -> int:
    return 0 if job["state"] == "SUCCESS" else 3 if job["state"] in FINAL else 1


def _listed_jobs(client: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The listing's jobs, each read in full (with its progress) unless it already finished."""
    page = _call(client, "GET", "/api/v1/jobs", params=params)
    return [
        item if item["state"] in FINAL else _call(client, "GET", f"/api/v1/jobs/{item['id']}") for item in page["items"]
    ]


def run(args: argparse.Namespace, client: httpx.Client) -> tuple[Any, int]:
    """The command's output and exit status."""
    if args.command == "submit":
        body = {"task": args.task, "kwargs": args.kwargs}
        body |= _params(countdown=args.countdown, eta=args.eta, priority=args.priority)
        accepted = _call(client, "POST", "/api/v1/jobs", json=body)
        if not args.wait:
            return accepted, 0
        deadline = time.monotonic() + args.timeout
        while True:
            job = _call(client, "GET", accepted["status_url"])
            if job["state"] in FINAL or time.monotonic() > deadline:
                return job, _exit_status(job)
            time.sleep(0.5)
    if args.command == "status":
        if args.follow:
            [job] = progress.follow(lambda: [_call(client, "GET", f"/api/v1/jobs/{args.job_id}")], args.timeout)
            return job, _exit_status(job)
        return _call(client, "GET", f"/api/v1/jobs/{args.job_id}"), 0
    if args.command == "jobs":
        params = _params(
            state=args.state, task=args.task, queue=args.queue, since=args.since, limit=args.limit, offset=args.offset
        )
        if args.watch:
            return progress.follow(lambda: _listed_jobs(client, params), args.timeout), 0
        return _call(client, "GET", "/api/v1/jobs", params=params), 0
    if args.command == "queues":
        return _call(client, "GET", "/api/v1/queues"), 0
    # dlq
    if args.action == "list":
        params = _params(queue=args.queue, task=args.task, reason=args.reason, limit=args.limit)
        return _call(client, "GET", "/api/v1/dlq", params=params), 0
    if not args.entry_id:
        raise SystemExit(f"taskfleet dlq {args.action}: an entry id is required")
    method, path = {
        "show": ("GET", f"/api/v1/dlq/{args.entry_id}"),
        "replay": ("POST", f"/api/v1/dlq/{args.entry_id}/replay"),
        "purge": ("DELETE", f"/api/v1/dlq/{args.entry_id}"),
    }[args.action]
    return _call(client, method, path), 0


def main(argv: Sequence[str] | None = None, client: httpx.Client | None = None) -> int:
    args = _parser().parse_args(argv)
    if client is None:
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        client = httpx.Client(base_url=args.url, headers=headers, timeout=30)
    try:
        with client:
            output, code = run(args, client)
    except ApiError as exc:
        print(f"taskfleet: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"taskfleet: cannot reach the API at {args.url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
