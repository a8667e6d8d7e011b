"""Capabilities and seccomp cannot be switched off through values: a null removes a key before the schema sees
it, and `capabilities.add` passes a free-form object, so the templates force the locked parts."""

from __future__ import annotations

from tests.chart.render import parse, pod_spec, render_values

WEAKENING = (
    "containerSecurityContext: {seccompProfile: null, capabilities: {drop: [], add: [NET_ADMIN, SYS_ADMIN]}}\n"
    "podSecurityContext: {seccompProfile: null}\n"
)


def test_values_cannot_add_capabilities_or_drop_seccomp() -> None:
    result = render_values(WEAKENING)
    assert result.returncode == 0, result.stderr
    pods = [o for o in parse(result.stdout) if o["kind"] in {"Deployment", "StatefulSet", "Pod"}]
    assert len(pods) >= 8
    for obj in pods:
        spec = pod_spec(obj)
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, obj["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            ctx = container["securityContext"]
            where = f"{obj['metadata']['name']}/{container['name']}"
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert (ctx["allowPrivilegeEscalation"], ctx["readOnlyRootFilesystem"], ctx["runAsNonRoot"]) == (
                False,
                True,
                True,
            ), where


def test_a_named_seccomp_profile_is_kept() -> None:
    result = render_values(
        "containerSecurityContext: {seccompProfile: {type: Localhost, localhostProfile: fleet.json}}\n"
    )
    assert result.returncode == 0, result.stderr
    deployments = [o for o in parse(result.stdout) if o["kind"] == "Deployment"]
    for obj in deployments:
        for container in pod_spec(obj)["containers"]:
            assert container["securityContext"]["seccompProfile"]["type"] == "Localhost"
