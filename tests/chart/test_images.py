"""The seven service images, built from one Dockerfile, checked without a container engine.

Static: infra/images/service.Dockerfile is multi-stage, installs the member named by its SERVICE build argument
with ``uv sync --frozen --package``, runs as a non-root user with an exec-form entrypoint whose launcher ``exec``s
the service (the process gets SIGTERM itself), and every bind mount has an absolute target (buildah rejects
relative ones). Dynamic: the Dockerfile's own ``uv sync`` lines run in a copy of the build context with SERVICE
set, and the result holds that service and its dependencies only. tests/kube builds and runs the real images.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.chart.render import REPO, service_names, values

SERVICES = service_names()
DOCKERFILE = REPO / "infra" / "images" / "service.Dockerfile"
#: Distributions that belong to exactly one service: no other image may carry them.
OWN_DEPENDENCIES = {"api": {"fastapi", "uvicorn"}}
#: The services that use the domain data package (database, models); the others must not install it.
DATA_USERS = {"api", "worker-default", "worker-email", "worker-matching", "worker-sync"}
#: Other members a service imports: the API's console shows Beat's schedule (taskfleet_beat.schedule, pure Python).
MEMBER_USERS = {"api": {"taskfleet_beat"}}
#: Only what computes or compares vectors installs numpy.
NUMPY_USERS = {"worker-matching", "worker-sync"}


def dockerfile() -> str:
    return DOCKERFILE.read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_deployed_service_is_a_member_with_an_entry_module() -> None:
    """Core is a library and grant-feeds a dev-only member: neither is deployed; no per-service Dockerfile is left."""
    assert not list((REPO / "services").glob("*/Dockerfile")), "one Dockerfile: infra/images/service.Dockerfile"
    for service in SERVICES:
        module = service.replace("-", "_")
        assert (REPO / "services" / service / "src" / f"taskfleet_{module}").is_dir(), service
    workers = sorted(p.parent.name for p in (REPO / "services").glob("worker-*/pyproject.toml"))
    assert set(workers) <= set(SERVICES), "every worker member has an image"
    queues = [f"worker-{q['name']}" for q in values()["queues"]]
    assert set(queues) <= set(SERVICES), "every queue of the chart's defaults has a worker image"


def test_dockerfile_shape() -> None:
    steps = instructions(dockerfile())
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) >= 3 and stages[-1].endswith("AS runtime"), "multi-stage, runtime stage last"
    assert any("python:3.11-slim" in args for word, args in steps if word == "ARG"), "official slim Python by default"
    runtime = steps[[i for i, (w, _) in enumerate(steps) if w == "FROM"][-1] :]
    runs = [args for word, args in steps if word == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert len(syncs) == 2
    assert all("--frozen" in r and '--package "taskfleet-$SERVICE"' in r and "--no-dev" in r for r in syncs)
    for run in runs:
        for target in re.findall(r"--mount=type=bind,[^ ]*target=([^, ]+)", run):
            assert target.startswith("/"), f"buildah needs absolute bind-mount targets: {target}"
    assert not any("uv" in args.split() for word, args in runtime if word == "RUN"), "no uv in the runtime stage"
    assert not any(w == "COPY" and "services" in a and "--from" not in a for w, a in runtime), "no sources at runtime"
    (user,) = [args for word, args in runtime if word == "USER"]
    assert user.split(":")[0] not in {"0", "root"} and int(user.split(":")[0]) >= 1000
    entry = [args for word, args in runtime if word == "ENTRYPOINT"]
    assert len(entry) == 1 and json.loads(entry[0]) == ["/app/.venv/bin/taskfleet-service"], "exec form"
    assert 'exec %s "$@"' in dockerfile(), "the launcher execs: the service is PID 1"
    assert not [w for w, _ in runtime if w == "CMD"], "the chart passes the arguments"
    env = " ".join(args for word, args in runtime if word == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "read-only root: never write .pyc at run time"
    assert "/tmp/" in env, "writable paths point at the /tmp emptyDir"


def launcher_command(service: str) -> list[str]:
    """What the Dockerfile's launcher execs for SERVICE, by running the Dockerfile's own case statement."""
    (run,) = [args for word, args in instructions(dockerfile()) if word == "RUN" and "case" in args]
    case = run[run.index("case") : run.index("esac") + 4]
    script = f'SERVICE={service}; {case}; printf "%s" "$command"'
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize("service", SERVICES)
def test_launcher_runs_the_service_module(service: str) -> None:
    argv = launcher_command(service)
    if service == "api":
        assert argv[:3] == ["uvicorn", "--factory", "taskfleet_api.main:create_api"]
    else:
        assert argv == ["python", "-m", f"taskfleet_{service.replace('-', '_')}"]


def test_dockerignore_sends_only_what_the_images_need() -> None:
    lines = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*" and {"!pyproject.toml", "!uv.lock", "!services/"} <= set(lines)


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What .dockerignore lets through: pyproject.toml, uv.lock, services/ without caches."""
    ctx = tmp_path_factory.mktemp("context")
    shutil.copy(REPO / "pyproject.toml", ctx)
    shutil.copy(REPO / "uv.lock", ctx)
    shutil.copytree(REPO / "services", ctx / "services", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return ctx


#: The four workers differ only in the member name; one worker stands for them.
@pytest.mark.parametrize("service", ["api", "beat", "queue-exporter", "worker-email"])
def test_the_dockerfile_uv_sync_installs_only_its_service(service: str, build_context: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_LINK_MODE": "copy", "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    for word, args in instructions(dockerfile()):
        if word == "RUN" and "uv sync" in args:
            command = args[args.index("uv sync") :].split("&&")[0]
            command = command.replace('"taskfleet-$SERVICE"', f"taskfleet-{service}")
            subprocess.run([*command.split(), "--quiet"], cwd=build_context, env=env, check=True, timeout=180)
    site = next(venv.glob("lib/python*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    ours = {name for name in installed if name.startswith("taskfleet")}
    expected = {"taskfleet_core", f"taskfleet_{service.replace('-', '_')}"}
    expected |= MEMBER_USERS.get(service, set())
    assert ours == expected | ({"taskfleet_data"} if service in DATA_USERS else set())
    if service not in DATA_USERS:
        assert not {"sqlalchemy", "alembic", "asyncpg", "aiosqlite"} & installed, f"{service} carries the data stack"
    assert ("numpy" in installed) == (service in NUMPY_USERS)
    for owner, names in OWN_DEPENDENCIES.items():
        if owner != service:
            assert not names & installed, f"{service} image carries {names & installed} of {owner}"
    assert "pytest" not in installed and "ruff" not in installed, "no dev dependencies"
    # Not editable: the venv works without the sources (the runtime stage copies only the venv).
    module = f"taskfleet_{service.replace('-', '_')}"
    probe = f"import {module}, taskfleet_core.observability.probes; print({module}.__file__)"
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], cwd="/", env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(site))
