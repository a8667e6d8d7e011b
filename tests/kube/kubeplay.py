"""Runs the rendered chart as pods under ``podman kube play`` (no cluster here; see docs/images.md).

``helm template`` renders the chart with infra/kube-play/values.yaml; each Deployment and StatefulSet becomes
one Pod from its pod template (podman 4.3 plays Deployments but not StatefulSets or Jobs), and so does the
migration hook Job (run to completion first), next to infra/kube-play/dependencies.yaml (PostgreSQL, SMTP
sink). What podman cannot do is done here, and only that:

- Services and cluster DNS: each pod gets a static address on a podman network, and every pod a ``hostAliases``
  entry per Service name (``<name>.<namespace>.svc``).
- ``secretKeyRef``: podman 4.3 stores a Secret but cannot read one key of it into an env var ("not valid
  JSON"), so the value is inlined from the rendered Secret.
- Probes: podman 4.3 turns httpGet probes into ``curl`` inside the container, which the images do not have; the
  probes are taken out of the played pods and run *as rendered* by :func:`run_probe` (exec in the container,
  HTTP and TCP against the pod's address).
- volumeClaimTemplates become emptyDirs, and every emptyDir is named ``<pod>-<volume>``: podman 4.3 plays an
  emptyDir as a *named* volume, so two pods' ``tmp`` volumes would otherwise be one shared directory.
- ``$(VAR)`` references in env values (dependent environment variables, e.g. the password in REDIS_URL) are
  expanded here as the kubelet does; podman 4.3 passes them through literally.
- ``containerPort``s are recorded (probes name them) and taken out: podman 4.3 publishes each on the host, so
  the metrics port 9808 of Beat, the exporter and the four workers would collide; on the pod network every pod
  has its own address.
- Annotation values longer than 63 characters (the checksum annotations) are cut to 63: podman 4.3 applies the
  label length limit to annotations too ("value length exceeds Kubernetetes max 63").
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.chart.render import REPO, helm, parse

RELEASE = "taskfleet"
NAMESPACE = "default"
NETWORK = "taskfleet-kube-play"
SUBNET = "10.89.112"
VALUES = REPO / "infra" / "kube-play" / "values.yaml"
DEPENDENCIES = REPO / "infra" / "kube-play" / "dependencies.yaml"
#: Static pod addresses (podman has no Services); the rest are numbered from .30 in render order.
ADDRESSES = {
    "taskfleet-postgres": f"{SUBNET}.10",
    "taskfleet-smtp-sink": f"{SUBNET}.11",
    "taskfleet-valkey": f"{SUBNET}.12",
    "taskfleet-migrate": f"{SUBNET}.13",
    "taskfleet-api": f"{SUBNET}.20",
}


@dataclass
class PlayPod:
    name: str
    manifest: dict[str, Any]
    address: str
    #: container name -> {"livenessProbe": ..., "readinessProbe": ..., "startupProbe": ...} as rendered
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: container name -> {port name: number}
    ports: dict[str, dict[str, int]] = field(default_factory=dict)
    grace: int = 30

    def container(self, name: str) -> str:
        """podman names a played pod's container <pod>-<container>."""
        return f"{self.name}-{name}"


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result


def render() -> list[dict[str, Any]]:
    return parse(helm("template", RELEASE, str(REPO / "charts" / "taskfleet"), "-f", str(VALUES)).stdout)


def _secrets(objects: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    out = {}
    for obj in objects:
        if obj["kind"] == "Secret":
            for key, value in (obj.get("data") or {}).items():
                out[(obj["metadata"]["name"], key)] = base64.b64decode(value).decode()
            for key, value in (obj.get("stringData") or {}).items():
                out[(obj["metadata"]["name"], key)] = value
    return out


def _inline_secrets(env: list[dict[str, Any]], secrets: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """secretKeyRef values inlined, then $(VAR) expanded from the variables defined before (kubelet semantics)."""
    out: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for var in env:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            var = {"name": var["name"], "value": secrets[(ref["name"], ref["key"])]}
        elif "value" in var:
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: seen.get(m[1], m[0]), str(var["value"]))
            var = {**var, "value": value}
        if "value" in var:
            seen[var["name"]] = var["value"]
        out.append(var)
    return out


def _host_aliases(services: list[str]) -> list[dict[str, Any]]:
    aliases = []
    for name in services:
        if name in ADDRESSES:
            aliases.append({"ip": ADDRESSES[name], "hostnames": [f"{name}.{NAMESPACE}.svc", name]})
    return aliases


def _pod(name: str, template: dict[str, Any], secrets: dict[tuple[str, str], str], extra_volumes: list[str]) -> PlayPod:
    spec = copy.deepcopy(template["spec"])
    pod = PlayPod(name=name, manifest={}, address="", grace=int(spec.get("terminationGracePeriodSeconds", 30)))
    for container in spec["containers"] + spec.get("initContainers", []):
        pod.probes[container["name"]] = {k: container.pop(k) for k in list(container) if k.endswith("Probe")}
        pod.ports[container["name"]] = {
            p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p
        }
        container["env"] = _inline_secrets(container.get("env", []), secrets)
        container.pop("ports", None)
    spec["volumes"] = spec.get("volumes", []) + [{"name": v, "emptyDir": {}} for v in extra_volumes]
    renamed = {v["name"]: f"{name}-{v['name']}" for v in spec["volumes"] if "emptyDir" in v}
    for volume in spec["volumes"]:
        volume["name"] = renamed.get(volume["name"], volume["name"])
    for container in spec["containers"] + spec.get("initContainers", []):
        for mount in container.get("volumeMounts", []):
            mount["name"] = renamed.get(mount["name"], mount["name"])
    spec.pop("serviceAccountName", None)
    pod.manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": template["metadata"].get("labels", {}),
            "annotations": {k: v[:63] for k, v in template["metadata"].get("annotations", {}).items()},
        },
        "spec": spec,
    }
    return pod


def plan() -> tuple[list[PlayPod], list[dict[str, Any]], list[str]]:
    """(pods in start order, ConfigMaps, kinds left out) of the rendered chart plus the dependencies."""
    objects = render()
    secrets = _secrets(objects)
    configmaps = [o for o in objects if o["kind"] == "ConfigMap"]
    left_out = sorted({o["kind"] for o in objects} - {"Deployment", "StatefulSet", "Job", "Secret", "ConfigMap"})
    services = [o["metadata"]["name"] for o in objects if o["kind"] == "Service"]
    services += ["taskfleet-postgres", "taskfleet-smtp-sink"]
    pods: list[PlayPod] = []
    for dep in yaml.safe_load_all(DEPENDENCIES.read_text()):
        pod = _pod(dep["metadata"]["name"], dep, secrets, [])
        pods.append(pod)
    for obj in objects:
        if obj["kind"] == "StatefulSet":
            claims = [c["metadata"]["name"] for c in obj["spec"].get("volumeClaimTemplates", [])]
            pods.append(_pod(obj["metadata"]["name"], obj["spec"]["template"], secrets, claims))
    for obj in objects:
        if obj["kind"] == "Job":  # the migration hook: its pod runs to completion before the fleet starts
            pods.append(_pod(obj["metadata"]["name"], obj["spec"]["template"], secrets, []))
    for obj in objects:
        if obj["kind"] == "Deployment":
            pods.append(_pod(obj["metadata"]["name"], obj["spec"]["template"], secrets, []))
    order = ["taskfleet-postgres", "taskfleet-smtp-sink", "taskfleet-valkey", "taskfleet-migrate"]
    pods.sort(key=lambda p: order.index(p.name) if p.name in order else len(order))
    spare = iter(range(30, 250))
    for pod in pods:
        pod.address = ADDRESSES.get(pod.name) or f"{SUBNET}.{next(spare)}"
        pod.manifest["spec"]["hostAliases"] = _host_aliases(services)
    return pods, configmaps, left_out


def play(pod: PlayPod, configmaps: list[dict[str, Any]], workdir: Path) -> None:
    path = workdir / f"{pod.name}.yaml"
    path.write_text(yaml.safe_dump_all([*configmaps, pod.manifest], sort_keys=False))
    podman("kube", "play", "--replace", "--network", NETWORK, "--ip", pod.address, str(path))


def ensure_network() -> None:
    if podman("network", "exists", NETWORK, check=False).returncode != 0:
        podman("network", "create", "--subnet", f"{SUBNET}.0/24", NETWORK)


def remove(pods: list[PlayPod]) -> None:
    """The pods and their (named) emptyDir volumes."""
    for pod in pods:
        podman("pod", "rm", "--force", "--time", "0", pod.name, check=False)
        for volume in pod.manifest["spec"].get("volumes", []):
            if "emptyDir" in volume or "configMap" in volume:
                name = volume["configMap"]["name"] if "configMap" in volume else volume["name"]
                podman("volume", "rm", "--force", name, check=False)


def _port(pod: PlayPod, container: str, port: int | str) -> int:
    return pod.ports[container][port] if isinstance(port, str) else int(port)


def run_probe(pod: PlayPod, container: str, probe: dict[str, Any]) -> tuple[bool, str]:
    """One probe exactly as rendered: exec in the running container, or HTTP/TCP to the pod's address."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "exec" in probe:
        result = podman("exec", pod.container(container), *probe["exec"]["command"], check=False, timeout=timeout + 30)
        return result.returncode == 0, (result.stdout + result.stderr).strip()[-300:]
    if "httpGet" in probe:
        get = probe["httpGet"]
        url = f"http://{pod.address}:{_port(pod, container, get['port'])}{get.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=max(timeout, 5)) as response:  # noqa: S310 -- pod address
                return 200 <= response.status < 400, f"{url} {response.status}"
        except OSError as exc:
            return False, f"{url} {exc}"
    if "tcpSocket" in probe:
        port = _port(pod, container, probe["tcpSocket"]["port"])
        try:
            with socket.create_connection((pod.address, port), timeout=max(timeout, 5)):
                return True, f"{pod.address}:{port} open"
        except OSError as exc:
            return False, f"{pod.address}:{port} {exc}"
    raise ValueError(f"unknown probe {probe}")


def inspect(name: str) -> dict[str, Any]:
    (data,) = json.loads(podman("container", "inspect", name).stdout)
    return dict(data)
