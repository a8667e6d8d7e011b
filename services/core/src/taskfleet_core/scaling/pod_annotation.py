"""Write one annotation of this worker's own pod, through the official ``kubernetes`` client.

A merge patch of ``metadata.annotations`` only (``PATCH /api/v1/namespaces/{ns}/pods/{name}``), so it never
conflicts with the kubelet's status writes and needs nothing but ``patch`` on pods.

The client's ``ApiClient`` does the work (configuration, TLS, the bearer token and its rotation); the generated
``CoreV1Api`` wrapper is left out on purpose: importing it builds every core/v1 model, about 90 MB more in the
worker's main process for a call whose answer is not even read. The client is imported on first use, in the
caller's thread, so a worker's start-up does not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Pod annotation the ReplicaSet controller reads when it picks scale-in victims (lower cost goes first).
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
#: RFC 7386 merge patch: a partial object; the client's default for PATCH is a JSON patch, which wants a list.
CONTENT_TYPE = "application/merge-patch+json"
#: Shown in the pod's managedFields.
FIELD_MANAGER = "taskfleet-worker"
#: The pods PATCH of the Kubernetes API (operation patchCoreV1NamespacedPod).
POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"
#: (connect, read) seconds: a hung API server holds the patching thread, never a task.
TIMEOUT = (3.0, 10.0)


class PatchFailed(Exception):
    """Not patched; ``reason`` is a short, bounded label: an HTTP status, ``unreachable``, ``tls``, ``config``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class PodAnnotator:
    """Sets annotations on one pod. In a pod: the mounted ServiceAccount token; elsewhere: a kubeconfig file."""

    def __init__(self, name: str, namespace: str, kubeconfig: Path | None = None) -> None:
        self.name = name
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self._api: Any = None

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client, config

            configuration = client.Configuration()
            try:
                # the kubernetes package's config loaders are unannotated
                if self.kubeconfig is not None:
                    path = str(self.kubeconfig)
                    config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
                else:  # the mounted ServiceAccount token, re-read as the kubelet rotates it
                    config.load_incluster_config(configuration)  # type: ignore[no-untyped-call]
            except (config.ConfigException, OSError) as exc:
                raise PatchFailed("config", str(exc)) from exc
            configuration.retries = 0  # one attempt: the caller retries at its own, bounded rate
            self._api = client.ApiClient(configuration)
        return self._api

    def set(self, key: str, value: str) -> None:
        """Set one annotation; raises ``PatchFailed``."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError, SSLError

        api = self._client()
        request = api.param_serialize(
            method="PATCH",
            resource_path=POD_PATH,
            path_params={"namespace": self.namespace, "name": self.name},
            query_params=[("fieldManager", FIELD_MANAGER)],
            header_params={"Accept": "application/json", "Content-Type": CONTENT_TYPE},
            body={"metadata": {"annotations": {key: value}}},
            auth_settings=["BearerToken"],
        )
        try:
            response = api.call_api(*request, _request_timeout=TIMEOUT)
            body = response.read()
        except ApiException as exc:  # the client's own wrapping of a TLS failure (status 0)
            raise PatchFailed("tls" if exc.status == 0 else str(exc.status), str(exc.reason)) from exc
        except (HTTPError, OSError) as exc:  # with retries=0 urllib3 wraps the cause in MaxRetryError
            cause = getattr(exc, "reason", None)
            reason = "tls" if isinstance(exc, SSLError) or isinstance(cause, SSLError) else "unreachable"
            raise PatchFailed(reason, str(exc)) from exc
        if not 200 <= response.status <= 299:
            raise PatchFailed(str(response.status), f"{response.reason} {body[:300]!r}")
