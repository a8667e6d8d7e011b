"""Busy-aware scale-in: a real prefork worker keeps its pod's pod-deletion-cost equal to the work it holds.

The worker, its pool, Valkey and the tasks are real; the API server is ``tests/support/kube_api.py``, the
pods PATCH endpoint checked against Kubernetes' own schema (no API server runs here). The worker reaches it
through the official client with a kubeconfig (``DELETION_COST_KUBECONFIG``), TLS and a bearer token, which is
what the in-cluster configuration amounts to.

The rate bound is a setting (``DELETION_COST_MIN_INTERVAL_SECONDS``, 15 s in the chart); these tests shorten it
to 1 s (in-between updates: 4 s) and check the spacing against whatever it is set to, so the suite stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import certifi
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from taskfleet_core.scaling.deletion_cost import REFINE_INTERVALS, work_held, worth_sending
from taskfleet_core.scaling.pod_annotation import DELETION_COST, FIELD_MANAGER, PatchFailed, PodAnnotator

from tests.runtime_k8s.conftest import wait_for
from tests.support.kube_api import KubeApi
from tests.support.ports import free_port
from tests.tls.test_valkey_tls import make_pki

NAMESPACE, POD = "fleet", "tf-taskfleet-worker-default-7c9d8-x2k4q"
INTERVAL = 1.0


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("kube-api-pki"))


@pytest.fixture
def kube_api(pki: dict[str, Path]) -> Iterator[KubeApi]:
    api = KubeApi(pki["server.crt"], pki["server.key"]).start()
    api.add_pod(NAMESPACE, POD)
    yield api
    api.stop()


def worker_env(k8s_env: dict[str, str], tmp_path: Path, kubeconfig: Path, **extra: str) -> dict[str, str]:
    return {
        **k8s_env,
        "DELETION_COST_ENABLED": "true",
        "DELETION_COST_KUBECONFIG": str(kubeconfig),
        "DELETION_COST_MIN_INTERVAL_SECONDS": str(INTERVAL),
        "POD_NAME": POD,
        "POD_NAMESPACE": NAMESPACE,
        "METRICS_PORT": str(free_port()),
        "METRICS_ADDR": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        **extra,
    }


def scrape(env: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{env['METRICS_PORT']}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("taskfleet_deletion_cost")
    }


def sample(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted({"queue_name": "default", **labels}.items()))), 0.0)


def costs(api: KubeApi) -> list[int]:
    return [int(p.annotations[DELETION_COST] or 0) for p in api.patches]


# --- the client calls ---------------------------------------------------------------------------


def test_the_client_sends_a_schema_valid_merge_patch_of_the_annotation_only(kube_api: KubeApi, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kubeconfig = kube_api.kubeconfig(tmp_path / "kubeconfig", pki["ca.crt"])
    PodAnnotator(POD, NAMESPACE, kubeconfig).set(DELETION_COST, "42")

    assert kube_api.violations == []
    (patch,) = kube_api.patches
    assert (patch.namespace, patch.name) == (NAMESPACE, POD)
    assert patch.content_type == "application/merge-patch+json"
    assert patch.field_manager == FIELD_MANAGER
    assert patch.annotations == {DELETION_COST: "42"}
    assert kube_api.annotations(NAMESPACE, POD) == {DELETION_COST: "42"}


def test_the_endpoint_refuses_what_the_api_server_or_the_fleet_would_not_accept(
    kube_api: KubeApi, pki, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """The checks bite: a non-string annotation (schema), a field beyond the annotations, a JSON patch."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(
        str(kube_api.kubeconfig(tmp_path / "kubeconfig", pki["ca.crt"])), client_configuration=configuration
    )
    api = client.CoreV1Api(client.ApiClient(configuration))
    merge = "application/merge-patch+json"
    cases = [
        (422, {"metadata": {"annotations": {DELETION_COST: 1}}}, merge),
        (422, {"metadata": {"annotations": {DELETION_COST: "1e3"}}}, merge),
        (422, {"metadata": {"labels": {"app": "x"}, "annotations": {DELETION_COST: "1"}}}, merge),
        (400, [{"op": "add", "path": "/metadata/annotations/x", "value": "1"}], "application/json-patch+json"),
    ]
    for code, body, content_type in cases:
        with pytest.raises(client.ApiException) as refused:
            api.patch_namespaced_pod(POD, NAMESPACE, body, _content_type=content_type)
        assert refused.value.status == code, body
    assert len(kube_api.violations) == len(cases), kube_api.violations
    assert "is not of type" in kube_api.violations[0] and "not an int32" in kube_api.violations[1]
    assert "more than metadata.annotations" in kube_api.violations[2]
    assert kube_api.patches == [] and kube_api.annotations(NAMESPACE, POD) == {}


def test_refusals_and_outages_come_back_as_short_reasons(kube_api: KubeApi, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kubeconfig = kube_api.kubeconfig(tmp_path / "kubeconfig", pki["ca.crt"])
    cases = {
        "404": PodAnnotator("no-such-pod", NAMESPACE, kubeconfig),
        "unreachable": PodAnnotator(
            POD, NAMESPACE, KubeApi(Path(), Path(), port=free_port()).kubeconfig(tmp_path / "closed", pki["ca.crt"])
        ),
        "config": PodAnnotator(POD, NAMESPACE, tmp_path / "missing-kubeconfig"),
        "tls": PodAnnotator(POD, NAMESPACE, kube_api.kubeconfig(tmp_path / "other-ca", Path(certifi.where()))),
    }
    for reason, annotator in cases.items():
        with pytest.raises(PatchFailed) as failed:
            annotator.set(DELETION_COST, "1")
        assert failed.value.reason == reason
    kube_api.token = "rotated"
    with pytest.raises(PatchFailed) as unauthorized:
        PodAnnotator(POD, NAMESPACE, kubeconfig).set(DELETION_COST, "1")
    assert unauthorized.value.reason == "401"


# --- the decision logic, on a real worker -------------------------------------------------------


def test_a_worker_patches_on_idle_busy_idle_with_the_work_it_holds_at_a_bounded_rate(  # type: ignore[no-untyped-def]
    worker_factory, k8s_env, producer, kube_api: KubeApi, pki, tmp_path
) -> None:
    env = worker_env(k8s_env, tmp_path, kube_api.kubeconfig(tmp_path / "kubeconfig", pki["ca.crt"]))
    worker = worker_factory("default", "--concurrency", "2", env=env)
    assert wait_for(lambda: costs(kube_api) == [0], timeout=10), "the first sample is sent: idle"

    published = time.time()
    results = [producer.send_task("maintenance.canary", kwargs={"sleep_seconds": 8}) for _ in range(2)]
    assert wait_for(lambda: len(costs(kube_api)) >= 2, timeout=10), "turning busy is sent"
    for result in results:
        result.get(timeout=30)
    finished = time.time()
    assert wait_for(lambda: costs(kube_api)[-1] == 0, timeout=INTERVAL + 3), "turning idle is sent"
    time.sleep(INTERVAL + 0.5)

    sent = costs(kube_api)
    assert kube_api.violations == []
    busy = sent[1:-1]
    assert sent[0] == sent[-1] == 0 and busy and all(busy), sent
    assert len(busy) >= 2, f"the busy cost grew: at least one in-between update: {sent}"
    assert max(busy) >= 2 * (1 + REFINE_INTERVALS * INTERVAL), "both tasks count, each 1 + its age"
    assert max(busy) <= work_held([published] * 2, finished)
    arrivals = [p.at for p in kube_api.patches]
    for i, (before, after) in enumerate(zip(sent, sent[1:], strict=False)):
        assert worth_sending(before, after), f"{before} -> {after} was not worth a PATCH: {sent}"
        turn = (before == 0) != (after == 0)
        bound = INTERVAL if turn else REFINE_INTERVALS * INTERVAL
        gap = arrivals[i + 1] - arrivals[i]
        assert gap >= bound - 0.1, f"{before} -> {after} after {gap:.2f} s, bound {bound} s: {sent}"

    metrics = scrape(env)
    assert sample(metrics, "taskfleet_deletion_cost_patches_total") == len(sent)
    assert sample(metrics, "taskfleet_deletion_cost") == 0
    assert sample(metrics, "taskfleet_deletion_cost_last_success_timestamp_seconds") >= finished - 1
    assert worker.log().count("pod-deletion-cost: pod fleet/") == 1, "one line when it starts working"


def test_a_hanging_api_server_never_delays_a_task(  # type: ignore[no-untyped-def]
    worker_factory, k8s_env, producer, kube_api: KubeApi, pki, tmp_path
) -> None:
    kube_api.delay = 6.0  # under the client's 10 s read timeout: the PATCH hangs, then succeeds
    env = worker_env(k8s_env, tmp_path, kube_api.kubeconfig(tmp_path / "kubeconfig", pki["ca.crt"]))
    worker_factory("default", "--concurrency", "1", env=env)
    assert wait_for(lambda: kube_api.waiting == 1, timeout=10), "the first PATCH is held"
    started = time.monotonic()
    for i in range(3):
        assert producer.send_task("maintenance.canary", kwargs={"payload": {"i": i}}).get(timeout=10)["payload"] == {
            "i": i
        }
    assert time.monotonic() - started < 3, "tasks ran while the PATCH hung"
    assert kube_api.waiting == 1 and kube_api.patches == [], "... and it was still hanging"
    assert wait_for(lambda: costs(kube_api)[:1] == [0], timeout=10)
    assert kube_api.violations == []


def test_a_worker_that_cannot_reach_the_api_server_keeps_working_and_says_so_once(  # type: ignore[no-untyped-def]
    worker_factory, k8s_env, producer, pki, tmp_path
) -> None:
    later = KubeApi(Path(), Path(), port=free_port())  # nothing listens there yet
    env = worker_env(
        k8s_env,
        tmp_path,
        later.kubeconfig(tmp_path / "kubeconfig", pki["ca.crt"]),
    )
    worker = worker_factory("default", "--concurrency", "1", env=env)
    failures = lambda: sample(scrape(env), "taskfleet_deletion_cost_patch_failures_total", reason="unreachable")  # noqa: E731
    assert wait_for(lambda: failures() >= 2, timeout=15), "the worker retries (1 s, then 2 s ...)"
    assert producer.send_task("maintenance.canary", kwargs={"payload": {"ok": 1}}).get(timeout=15)["payload"] == {
        "ok": 1
    }
    assert worker.log().count("pod-deletion-cost: cannot patch pod fleet/") == 1, "once per outage"
    assert sample(scrape(env), "taskfleet_deletion_cost_last_success_timestamp_seconds") == 0

    api = KubeApi(pki["server.crt"], pki["server.key"], port=later.port)
    api.add_pod(NAMESPACE, POD)
    api.start()
    try:
        assert wait_for(lambda: costs(api) == [0], timeout=20), "the API server is back: the pod is patched"
        assert api.violations == []
        worker.wait_for("pod-deletion-cost: pod fleet/" + POD + " patched again", timeout=5)
        assert worker.log().count("cannot patch") == 1
    finally:
        api.stop()
