"""Image tags may be digests: `sha256:...` renders as repository@sha256:..., for the fleet, Valkey and Flower."""

from __future__ import annotations

from tests.chart.render import parse, pod_spec, render_values

DIGEST = "sha256:" + "0123456789abcdef" * 4


def images(values: str) -> set[str]:
    result = render_values(values)
    assert result.returncode == 0, result.stderr
    return {
        c["image"]
        for o in parse(result.stdout)
        if o["kind"] in {"Deployment", "StatefulSet"}
        for c in pod_spec(o)["containers"]
    }


def test_digests_render_with_an_at_sign() -> None:
    got = images(
        f"image: {{tag: '{DIGEST}'}}\nvalkey: {{image: {{tag: '{DIGEST}'}}}}\n"
        f"flower: {{enabled: true, basicAuth: {{existingSecret: f}}, image: {{tag: '{DIGEST}'}}}}\n"
    )
    assert "ghcr.io/taskfleet/taskfleet-worker-email@" + DIGEST in got
    assert "valkey/valkey@" + DIGEST in got
    assert any(i.endswith("@" + DIGEST) and "flower" in i for i in got), got
    assert not [i for i in got if ":sha256" in i], got


def test_plain_tags_keep_the_colon() -> None:
    got = images("image: {tag: '1.2.3'}\n")
    assert "ghcr.io/taskfleet/taskfleet-api:1.2.3" in got
