"""No Valkey password drift: the chart generates a password only where it can look up (and so keep) the Secret;
a render without a cluster (helm template, GitOps) needs existingSecret or valkey.auth.password."""

from __future__ import annotations

import base64
import subprocess

from tests.chart.render import CHART, NAMESPACE, RELEASE, by_name, parse, tool

PREFIX = f"{RELEASE}-taskfleet"


def template(*args: str) -> subprocess.CompletedProcess[str]:
    """helm template without the harness's password (render.template_args always adds one)."""
    command = [tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_no_generated_password_without_a_cluster() -> None:
    out = template()
    assert out.returncode != 0
    assert "valkey.auth: no password and no cluster to keep a generated one in" in out.stderr
    assert f"kubectl -n {NAMESPACE} create secret generic {PREFIX}-valkey" in out.stderr


def test_a_given_password_renders_the_same_secret_every_time() -> None:
    first, second = (template("--set", "valkey.auth.password=pw-1") for _ in range(2))
    assert first.returncode == 0, first.stderr
    secrets = [by_name(parse(out.stdout), "Secret")[f"{PREFIX}-valkey"] for out in (first, second)]
    assert secrets[0] == secrets[1]
    assert base64.b64decode(secrets[0]["data"]["password"]).decode() == "pw-1"
    assert secrets[0]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_an_existing_secret_needs_no_password_and_renders_none() -> None:
    out = template("--set", "valkey.auth.existingSecret=mine")
    assert out.returncode == 0, out.stderr
    objects = parse(out.stdout)
    assert f"{PREFIX}-valkey" not in by_name(objects, "Secret")
    refs = [
        e["valueFrom"]["secretKeyRef"]["name"]
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if e["name"] == "VALKEY_PASSWORD"
    ]
    assert refs and set(refs) == {"mine"}
