"""TLS and ACLs to an external Valkey: the CA Secret mounted in every fleet pod, REDIS_URL naming the verification
and the ACL user, KEDA given the same user, TLS switch and CA (keda.sh redis scaler auth parameters)."""

from __future__ import annotations

import base64
import ssl
from typing import Any

from taskfleet_core.settings import BrokerSettings, redis_ssl_options

from tests.chart.render import PASSWORD_SET, by_name, of_kind, parse, pod_spec, render_scenario, render_values

PREFIX = "tf-taskfleet"
EXTERNAL_TLS = """
valkey:
  enabled: false
  external: {host: valkey.example.internal, tls: {enabled: true, caSecret: my-ca, caKey: root.pem}}
  auth: {username: fleet}
"""


def fleet_containers(objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(pod spec, container) of every container that talks to Valkey."""
    found = []
    for obj in of_kind(objects, "Deployment"):
        spec = pod_spec(obj)
        for container in spec["containers"]:
            if any(e["name"] == "REDIS_URL" for e in container.get("env", [])):
                found.append((spec, container))
    return found


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def ca_file_of(spec: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret, key) that the file at ``path`` in ``container`` comes from."""
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"] + "/"):
            volume = {v["name"]: v for v in spec["volumes"]}[mount["name"]]
            item = path.removeprefix(mount["mountPath"] + "/")
            keys = {i["path"]: i["key"] for i in volume["secret"]["items"]}
            return volume["secret"]["secretName"], keys[item]
    raise AssertionError(f"{path} is mounted in no volume of {container['name']}")


def test_every_fleet_pod_verifies_the_server_with_the_mounted_ca() -> None:
    objects = list(render_scenario("production"))
    containers = fleet_containers(objects)
    names = {c["name"] for _, c in containers}
    assert {"api", "beat", "queue-exporter", "flower"} <= names and any(n.startswith("worker") for n in names), names
    for spec, container in containers:
        env = env_of(container)
        url = env["REDIS_URL"]
        assert url.startswith("rediss://$(VALKEY_USERNAME):$(VALKEY_PASSWORD)@valkey.prod.internal:6379/2?"), url
        assert env["VALKEY_USERNAME"]["secretKeyRef"] == {"name": "taskfleet-valkey", "key": "username"}
        # what the fleet's code derives from that URL (Flower's plain Celery reads the same query parameters)
        options = redis_ssl_options(BrokerSettings(redis_url=url.replace("$(", "").replace(")", "")).redis_url)
        assert options is not None and options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
        assert "ssl_cert_reqs=required" in url, "stated in the URL itself, for Flower and any plain Celery"
        assert ca_file_of(spec, container, options["ssl_ca_certs"]) == ("valkey-ca", "ca.crt")


def test_keda_gets_the_acl_user_the_tls_switch_and_the_ca() -> None:
    objects = list(render_scenario("production"))
    (auth,) = of_kind(objects, "TriggerAuthentication")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    assert refs == {
        "username": ("taskfleet-valkey", "username"),
        "password": ("taskfleet-valkey", "password"),
        "tls": ("taskfleet-valkey", "tls"),
        "ca": ("valkey-ca", "ca.crt"),
    }
    for scaled in of_kind(objects, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]


def test_the_chart_secret_carries_user_and_tls_switch_and_a_custom_ca_key() -> None:
    out = render_values(EXTERNAL_TLS)
    assert out.returncode == 0, out.stderr
    objects = parse(out.stdout)
    secret = by_name(objects, "Secret")[f"{PREFIX}-valkey"]
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"password": PASSWORD_SET.split("=", 1)[1], "username": "fleet", "tls": "enable"}
    for spec, container in fleet_containers(objects):
        url = env_of(container)["REDIS_URL"]
        assert url.endswith("?ssl_cert_reqs=required&ssl_ca_certs=/etc/taskfleet/valkey-ca/root.pem"), url
        assert ca_file_of(spec, container, "/etc/taskfleet/valkey-ca/root.pem") == ("my-ca", "root.pem")
    (auth,) = of_kind(objects, "TriggerAuthentication")
    assert {r["parameter"]: r["key"] for r in auth["spec"]["secretTargetRef"]}["ca"] == "root.pem"


def test_without_tls_nothing_is_mounted_and_the_url_is_plain() -> None:
    objects = list(render_scenario("default"))
    for spec, container in fleet_containers(objects):
        env = env_of(container)
        assert env["REDIS_URL"].startswith("redis://:$(VALKEY_PASSWORD)@") and "?" not in env["REDIS_URL"]
        assert "VALKEY_USERNAME" not in env
        assert all(v["name"] != "valkey-ca" for v in spec["volumes"])
    (auth,) = of_kind(objects, "TriggerAuthentication")
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["password"]


def test_tls_without_a_ca_secret_still_requires_a_verified_certificate() -> None:
    out = render_values("valkey: {enabled: false, external: {host: v.example, tls: {enabled: true}}}")
    assert out.returncode == 0, out.stderr
    for spec, container in fleet_containers(parse(out.stdout)):
        assert env_of(container)["REDIS_URL"].endswith("/0?ssl_cert_reqs=required")  # system CAs
        assert all(v["name"] != "valkey-ca" for v in spec["volumes"])


def test_inconsistent_tls_and_acl_values_fail_with_the_fix() -> None:
    out = render_values("valkey: {auth: {username: fleet}}")
    assert out.returncode != 0 and "ACL users are for an external Valkey" in out.stderr
    out = render_values("valkey: {external: {tls: {caSecret: my-ca}}}")
    assert out.returncode != 0 and "caSecret is set but TLS is off" in out.stderr
