"""Write one annotation of this worker's own pod, through the official ``kubernetes`` client.

A merge patch of ``metadata.annotations`` only (``PATCH /api/v1/namespaces/{ns}/pods/{name}``), so it never
conflicts with the kubelet's status writes and needs nothing but ``patch`` on pods. The client is imported on
first use, in the caller's thread: it costs about half a second of CPU that a worker's start-up need not pay.
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
#: (connect, read) seconds: a hung API server holds the patching thread, never a task.
TIMEOUT = (3.0, 10.0)


class PatchFailed(Exception):
    """The pod was not patched; ``reason`` is a short, bounded label (an HTTP status, ``unreachable``, ``config``)."""

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

    def _core_api(self) -> Any:
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
            self._api = client.CoreV1Api(client.ApiClient(configuration))
        return self._api

    def set(self, key: str, value: str) -> None:
        """Set one annotation; raises ``PatchFailed``."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        api = self._core_api()
        try:
            response = api.patch_namespaced_pod(
                self.name,
                self.namespace,
                {"metadata": {"annotations": {key: value}}},
                field_manager=FIELD_MANAGER,
                _content_type=CONTENT_TYPE,
                _preload_content=False,  # the whole Pod comes back: no need to parse it into models
                _request_timeout=TIMEOUT,
            )
            response.read()
        except ApiException as exc:
            raise PatchFailed(str(exc.status), f"{exc.reason} {str(exc.body or '')[:300]}".strip()) from exc
        except (HTTPError, OSError) as exc:
            raise PatchFailed("unreachable", str(exc)) from exc
