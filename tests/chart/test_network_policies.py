"""The API and Flower take traffic only on their HTTP port, and Flower only from the peers values name (by
default the release namespace's pods)."""

from __future__ import annotations

from typing import Any

from tests.chart.render import by_name, parse, render_values

FLOWER = "flower: {enabled: true, basicAuth: {existingSecret: flower-auth}}\n"


def policies(values: str) -> dict[str, dict[str, Any]]:
    result = render_values(values)
    assert result.returncode == 0, result.stderr
    return by_name(parse(result.stdout), "NetworkPolicy")


def test_api_takes_only_its_port_from_anywhere_by_default() -> None:
    policy = policies("")["tf-taskfleet-api"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api"
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert "from" not in rule


def test_api_peers_from_values() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    (rule,) = policies(
        "networkPolicy: {apiFrom: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]}\n"
    )["tf-taskfleet-api"]["spec"]["ingress"]
    assert rule["from"] == [peer]


def test_flower_only_from_the_namespace_by_default_and_only_when_enabled() -> None:
    assert "tf-taskfleet-flower" not in policies("")
    policy = policies(FLOWER)["tf-taskfleet-flower"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "flower"
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5555}]
    assert rule["from"] == [{"podSelector": {}}]


def test_no_policies_when_switched_off() -> None:
    assert not policies("networkPolicy: {enabled: false}\n" + FLOWER)
