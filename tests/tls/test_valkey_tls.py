"""REDIS_URL=rediss://user:password@... against a real TLS redis-server with ACLs and a CA made by the test.

The server refuses plain TCP and the default user: the app made by create_app publishes over TLS with the ACL
user, a real prefork worker runs the task and stores its result over TLS, and the queue-depth code reads the
same server through the broker client (taskfleet_core.broker.client).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from tests.support.environment import applied_env
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess, start_worker

REDIS_SERVER = os.environ.get("TLS_REDIS_SERVER", "/usr/bin/redis-server")
USER = "fleet"
PASSWORD = "s3cret-pass"

pytestmark = pytest.mark.skipif(
    not (Path(REDIS_SERVER).exists() and shutil.which("openssl")), reason="needs a TLS-built redis-server and openssl"
)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=taskfleet test CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "1", "-extfile", "san.ext", "-out", "server.crt", cwd=directory)  # fmt: skip
    return {name: directory / f"{name}" for name in ("ca.crt", "server.crt", "server.key")}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    workdir = tmp_path_factory.mktemp("tls-valkey")
    pki = make_pki(workdir / "pki")
    # a second CA, for the negative check: a client trusting it must not get through
    other = make_pki(workdir / "other-pki")
    port = free_port()
    config = workdir / "redis.conf"
    # ACLs: the default user is off, so only the fleet's ACL user gets in
    config.write_text(f"user default off\nuser {USER} on >{PASSWORD} ~* &* +@all\n")
    args = [
        REDIS_SERVER, str(config), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(pki["server.crt"]), "--tls-key-file", str(pki["server.key"]),
        "--tls-ca-cert-file", str(pki["ca.crt"]), "--tls-auth-clients", "no",
        "--dir", str(workdir), "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
        "--logfile", str(workdir / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(args)
    probe = redis.Redis(host="127.0.0.1", port=port, username=USER, password=PASSWORD, ssl=True,
                        ssl_ca_certs=str(pki["ca.crt"]))  # fmt: skip
    deadline = time.monotonic() + 15
    while True:
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"TLS redis-server did not start: {(workdir / 'redis.log').read_text()}") from None
            time.sleep(0.1)
    probe.close()
    yield {"port": port, "ca": pki["ca.crt"], "other_ca": other["ca.crt"], "dir": workdir}
    process.terminate()
    process.wait(10)


def tls_url(server: dict[str, object], ca: object, **extra: str) -> str:
    query = "&".join([f"ssl_ca_certs={quote(str(ca))}", *(f"{k}={v}" for k, v in extra.items())])
    return f"rediss://{USER}:{quote(PASSWORD)}@127.0.0.1:{server['port']}/0?{query}"


def test_the_server_refuses_plain_tcp_and_the_default_user(tls_server: dict[str, object]) -> None:
    plain = redis.Redis(host="127.0.0.1", port=int(str(tls_server["port"])), socket_timeout=3)
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    anonymous = redis.Redis.from_url(f"rediss://127.0.0.1:{tls_server['port']}/0?ssl_ca_certs={tls_server['ca']}")
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()


def test_settings_default_cert_reqs_to_required_and_derive_celery_ssl_options(tls_server: dict[str, object]) -> None:
    from taskfleet_core.settings import BrokerSettings, redis_ssl_options

    url = tls_url(tls_server, tls_server["ca"])
    settings = BrokerSettings(redis_url=url)
    assert "ssl_cert_reqs=required" in settings.redis_url
    assert redis_ssl_options(settings.redis_url) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(tls_server["ca"]),
    }
    assert redis_ssl_options("redis://127.0.0.1:6379/0") is None
    with pytest.raises(ValueError, match="ssl_cert_reqs"):
        BrokerSettings(redis_url=url + "&ssl_cert_reqs=sometimes")


def test_a_client_trusting_another_ca_is_refused(tls_server: dict[str, object]) -> None:
    from taskfleet_core.settings import BrokerSettings

    wrong = redis.Redis.from_url(BrokerSettings(redis_url=tls_url(tls_server, tls_server["other_ca"])).redis_url)
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        wrong.ping()


def test_task_round_trip_over_tls_with_acl_user(tls_server: dict[str, object], tmp_path: Path) -> None:
    url = tls_url(tls_server, tls_server["ca"])
    env = {
        "REDIS_URL": url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'taskfleet.db'}",
        "BEAT_SCHEDULE_FILE": str(tmp_path / "celerybeat-schedule"),
        "WORKER_HEALTH_DIR": str(tmp_path / "health"),
        "API_TOKENS": "tls-test-token",
    }
    with applied_env(env):
        from taskfleet_core.broker.client import client
        from taskfleet_core.broker.depths import queue_depths
        from taskfleet_core.tasks.app import create_app

        app = create_app("tls-test")
        assert app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
        assert app.conf.redis_backend_use_ssl["ssl_ca_certs"] == str(tls_server["ca"])

        # published before any worker runs: the queue-depth code sees it over TLS
        result = app.send_task("maintenance.canary", kwargs={"steps": 2, "payload": {"over": "tls"}})
        depths = queue_depths(client())
        assert depths["default"]["waiting"] == 1, depths

        worker: ServiceProcess = start_worker("default", {**os.environ, **env}, tmp_path)
        try:
            value = result.get(timeout=60)
        finally:
            worker.stop()
        assert value == {"steps": 2, "attempts": 1, "payload": {"over": "tls"}}
        # the worker stored the result in the TLS server (the default user is off: only the ACL user could)
        stored = client().get(f"celery-task-meta-{result.id}")
        assert stored and '"SUCCESS"' in stored
        clients = client().client_list()
        assert clients and all(entry["user"] == USER for entry in clients), clients
        result.forget()
        app.close()
