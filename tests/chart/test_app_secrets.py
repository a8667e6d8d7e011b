"""API tokens, SMTP login and OTLP endpoint come from a Secret (the chart's <fullname>-app, or an existingSecret
each), and the pods carry checksum annotations so a changed value rolls them."""

from __future__ import annotations

from typing import Any

from tests.chart.render import by_name, of_kind, parse, pod_spec, render_values

FLEET = ["tf-taskfleet-api", "tf-taskfleet-beat", "tf-taskfleet-queue-exporter", "tf-taskfleet-worker-email"]


def render(values: str) -> list[dict[str, Any]]:
    result = render_values(values)
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


def env_of(objects: list[dict[str, Any]], deployment: str) -> dict[str, dict[str, Any]]:
    (container,) = [c for c in pod_spec(by_name(objects, "Deployment")[deployment])["containers"]][:1]
    return {e["name"]: e for e in container["env"]}


def test_chart_secret_holds_tokens_smtp_login_and_otlp_endpoint() -> None:
    objects = render(
        "apiTokens: {tokens: 'new,old', readTokens: 'dash'}\n"
        "smtp: {host: smtp.example.com, port: 587, starttls: true, username: mailer, password: pw}\n"
        "otel: {endpoint: 'http://otel-collector:4317'}\n"
    )
    secret = by_name(objects, "Secret")["tf-taskfleet-app"]
    assert secret["stringData"] == {
        "api-tokens": "new,old",
        "api-read-tokens": "dash",
        "smtp-username": "mailer",
        "smtp-password": "pw",
        "otlp-endpoint": "http://otel-collector:4317",
    }
    for name in FLEET:
        env = env_of(objects, name)
        assert env["API_TOKENS"]["valueFrom"]["secretKeyRef"] == {"name": "tf-taskfleet-app", "key": "api-tokens"}
        assert env["API_READ_TOKENS"]["valueFrom"]["secretKeyRef"] == {
            "name": "tf-taskfleet-app",
            "key": "api-read-tokens",
            "optional": True,
        }
        assert env["SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "tf-taskfleet-app", "key": "smtp-password"}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["valueFrom"]["secretKeyRef"]["key"] == "otlp-endpoint"
        assert (env["SMTP_HOST"]["value"], env["SMTP_PORT"]["value"], env["SMTP_STARTTLS"]["value"]) == (
            "smtp.example.com",
            "587",
            "true",
        )


def test_existing_secrets_replace_the_chart_secret() -> None:
    objects = render(
        "apiTokens: {existingSecret: api-tokens, secretKey: t}\n"
        "smtp: {existingSecret: smtp-login}\n"
        "otel: {existingSecret: otel, secretKey: url}\n"
    )
    assert "tf-taskfleet-app" not in by_name(objects, "Secret"), "nothing left for the chart's Secret to hold"
    env = env_of(objects, "tf-taskfleet-worker-email")
    assert env["API_TOKENS"]["valueFrom"]["secretKeyRef"] == {"name": "api-tokens", "key": "t"}
    read = env["API_READ_TOKENS"]["valueFrom"]["secretKeyRef"]
    assert read == {"name": "api-tokens", "key": "readTokens", "optional": True}, "a Secret without it: no read tokens"
    assert env["SMTP_USERNAME"]["valueFrom"]["secretKeyRef"] == {"name": "smtp-login", "key": "username"}
    assert env["SMTP_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "smtp-login", "key": "password"}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["valueFrom"]["secretKeyRef"] == {"name": "otel", "key": "url"}


def test_no_smtp_login_or_tracing_unless_configured() -> None:
    env = env_of(render(""), "tf-taskfleet-worker-email")
    assert "SMTP_USERNAME" not in env and "SMTP_PASSWORD" not in env
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in env
    assert env["API_TOKENS"]["valueFrom"]["secretKeyRef"]["name"] == "tf-taskfleet-app"


def annotations(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"] for d in of_kind(objects, "Deployment")
    }


def test_a_changed_secret_value_changes_every_pod_checksum() -> None:
    before = annotations(render("apiTokens: {tokens: one}\n"))
    after = annotations(render("apiTokens: {tokens: two}\n"))
    assert set(before) >= set(FLEET)
    for name in before:
        assert before[name]["checksum/app-secret"] != after[name]["checksum/app-secret"], name
        assert before[name]["checksum/env"] == after[name]["checksum/env"], name


def test_a_changed_existing_secret_name_or_database_changes_the_env_checksum() -> None:
    base = annotations(render(""))
    for values in (
        "database: {existingSecret: db}\n",
        "smtp: {host: other}\n",
        "valkey: {auth: {existingSecret: v}}\n",
    ):
        changed = annotations(render(values))
        assert all(base[n]["checksum/env"] != changed[n]["checksum/env"] for n in base), values


def test_rendering_twice_gives_the_same_checksums() -> None:
    """No drift under `helm template` (Argo CD): the checksums never include the generated Valkey password."""
    assert annotations(render("apiTokens: {tokens: x}\n")) == annotations(render("apiTokens: {tokens: x}\n"))
