"""The pods PATCH endpoint of a Kubernetes API server, checked against Kubernetes' own schema.

No API server runs on these machines: this is the one component of the deletion-cost tests that is not the
real thing. It serves ``PATCH /api/v1/namespaces/{namespace}/pods/{name}`` over HTTPS with a bearer token, and
checks every request the way the API server's handler for operation ``patchCoreV1NamespacedPod`` would:

* method, path and query parameters of the operation (OpenAPI v2 ``paths``);
* the content type among the operation's ``consumes``; the fleet must send a merge or strategic-merge patch;
* the body against the ``io.k8s.api.core.v1.Pod`` JSON schema bundled in kubernetes-validate (strict: no
  unknown fields; ObjectMeta.annotations is map[string]string), and that it touches ``metadata.annotations``
  only;
* ``controller.kubernetes.io/pod-deletion-cost`` parses as an int32, as the API server validates it.

A request that fails a check gets the API server's error status and is listed in ``violations``; a test
asserts that list stays empty. Accepted patches are merged into the pod and listed in ``patches``.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

#: The Kubernetes version whose schema checks the bodies (the chart tests validate against the same one).
KUBERNETES_VERSION = "1.33.0"
PATH = re.compile(r"^/api/v1/namespaces/(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/pods/(?P<name>[a-z0-9.-]+)$")
#: ``consumes`` of patchCoreV1NamespacedPod in the Kubernetes OpenAPI spec.
CONSUMES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/apply-patch+cbor",
)
#: The patch types whose body is a partial Pod (the others are a JSON-patch list or a full apply configuration).
OBJECT_PATCHES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
#: Query parameters of the operation.
QUERY = {"pretty", "dryRun", "fieldManager", "fieldValidation", "force"}
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def pod_validator() -> jsonschema.Draft202012Validator:
    """The strict Pod schema of kubernetes-validate, with its definitions resolvable (as its validate() does)."""
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
    schema = json.loads((base / "pod-v1.json").read_text())
    definitions = json.loads((base / "_definitions.json").read_text())
    registry: Registry[Any] = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


@dataclass
class Patch:
    at: float  # time.monotonic() of arrival
    namespace: str
    name: str
    content_type: str
    field_manager: str | None
    annotations: dict[str, str | None]


@dataclass
class KubeApi:
    """Serve with ``start()``; ``pods`` are the pods that exist, ``token`` the bearer token it accepts."""

    certfile: Path
    keyfile: Path
    token: str = "deletion-cost-test-token"
    port: int = 0
    pods: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    patches: list[Patch] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    #: Seconds each PATCH is held before it is answered (an overloaded API server); ``waiting``: held right now.
    delay: float = 0.0
    waiting: int = 0

    def __post_init__(self) -> None:
        self._validator = pod_validator()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def add_pod(self, namespace: str, name: str) -> None:
        self.pods[(namespace, name)] = {}

    def start(self) -> KubeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep pytest's output clean
                pass

            def do_PATCH(self) -> None:
                if api.delay:
                    with api._lock:
                        api.waiting += 1
                    time.sleep(api.delay)
                    with api._lock:
                        api.waiting -= 1
                code, body = api.handle(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(int(self.headers["Content-Length"])),
                )
                payload = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _refuse(self) -> None:
                api.violation(f"{self.command} {self.path}: the fleet only ever PATCHes its pod")
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = _refuse

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="kube-api", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def kubeconfig(self, path: Path, cafile: Path) -> Path:
        """A kubeconfig naming this server, its CA and the token (what a pod's mounted token amounts to)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": f"https://127.0.0.1:{self.port}", "certificate-authority": str(cafile)},
                }
            ],
            "users": [{"name": "worker", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "worker"}}],
            "current-context": "test",
        }
        path.write_text(json.dumps(config))
        return path

    def annotations(self, namespace: str, name: str) -> dict[str, str]:
        with self._lock:
            return dict(self.pods[(namespace, name)])

    def handle(self, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """Check one PATCH (``headers`` with lower-case names: HTTP's are case-insensitive); (status, body)."""
        url = urlsplit(target)
        match = PATH.match(url.path)
        if match is None:
            self.violation(f"PATCH {url.path}: not the pods PATCH path")
            return 404, status(404, "NotFound", f"the server could not find {url.path}")
        query = parse_qs(url.query)
        if unknown := set(query) - QUERY:
            self.violation(f"unknown query parameters {sorted(unknown)}")
            return 400, status(400, "BadRequest", f"unknown query parameters {sorted(unknown)}")
        if headers.get("authorization") != f"Bearer {self.token}":
            self.violation("no or wrong bearer token")
            return 401, status(401, "Unauthorized", "Unauthorized")
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type not in CONSUMES:
            self.violation(f"content type {content_type!r} is not among the operation's consumes")
            return 415, status(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format {content_type}"
            )
        if content_type not in OBJECT_PATCHES:
            self.violation(f"content type {content_type}: the fleet sends a merge patch of the annotations")
            return 400, status(400, "BadRequest", "expected a merge patch")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self.violation(f"body is not JSON: {exc}")
            return 400, status(400, "BadRequest", str(exc))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in self._validator.iter_errors(body)]
        if set(body) != {"metadata"} or set(body["metadata"]) != {"annotations"}:
            errors.append(f"patches more than metadata.annotations: {body}")
        annotations: dict[str, str | None] = (body.get("metadata") or {}).get("annotations") or {}
        cost = annotations.get(DELETION_COST)
        if isinstance(cost, str) and not _int32(cost):  # a non-string already failed the schema
            errors.append(f"{DELETION_COST}={cost!r} is not an int32")
        if errors:
            for error in errors:
                self.violation(error)
            return 422, status(422, "Invalid", "; ".join(errors))
        namespace, name = match["namespace"], match["name"]
        with self._lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                return 404, status(404, "NotFound", f'pods "{name}" not found')
            for key, value in annotations.items():
                if value is None:
                    pod.pop(key, None)
                else:
                    pod[key] = value
            manager = query.get("fieldManager", [None])[0]
            self.patches.append(Patch(time.monotonic(), namespace, name, content_type, manager, annotations))
            merged = dict(pod)
        return 200, {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": merged},
        }


def _int32(value: str) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    return -(2**31) <= number < 2**31 and str(number) == value


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
