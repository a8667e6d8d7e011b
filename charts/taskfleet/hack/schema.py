"""Writes values.schema.json: types, bounds and descriptions here, defaults read from values.yaml.

    uv run python charts/taskfleet/hack/schema.py          # write
    uv run python charts/taskfleet/hack/schema.py --check  # exit 1 if values.schema.json is stale

Strict on purpose: every object says whether unknown keys are allowed (almost never), security settings that must
not be switched off are constants, and each leaf carries its values.yaml default (a chart test checks both).
"""

import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[1]


def s(t, d, **kw):
    return {"type": t, "description": d, **kw}


def obj(d, props, required=None, **kw):
    o = {"type": "object", "description": d, "additionalProperties": False, "properties": props}
    if required:
        o["required"] = required
    o.update(kw)
    return o


def free(d):
    return {"type": "object", "description": d}


def arr(d, items=None):
    return {"type": "array", "description": d, **({"items": items} if items else {})}


def pos(d, mn=1):
    return s("integer", d, minimum=mn)


def placement(who):
    """Scheduling and metadata keys every component takes (workers: per queue, in workerDefaults)."""
    return {
        "nodeSelector": free(f"nodeSelector of {who}."),
        "tolerations": arr(f"Tolerations of {who}."),
        "affinity": free(f"Affinity of {who}."),
        "podAnnotations": free(f"Extra annotations of {who}."),
        "podLabels": free(f"Extra labels of {who} (never in selectors)."),
        "priorityClassName": s("string", f"PriorityClass of {who}; empty means the cluster default."),
        "topologySpreadConstraints": arr(
            f"topologySpreadConstraints of {who}; an entry without labelSelector gets the component's selector."
        ),
    }


quantity = {"anyOf": [{"type": "string", "pattern": r"^[0-9.]+[a-zA-Z]*$"}, {"type": "number", "minimum": 0}]}
resources = obj(
    "Container resources; requests and limits are both required (no pod runs unbounded).",
    {
        "requests": {
            "type": "object",
            "description": "Resource requests.",
            "required": ["cpu", "memory"],
            "additionalProperties": quantity,
            "properties": {"cpu": quantity, "memory": quantity},
        },
        "limits": {
            "type": "object",
            "description": "Resource limits.",
            "required": ["memory"],
            "additionalProperties": quantity,
            "properties": {"cpu": quantity, "memory": quantity},
        },
    },
    required=["requests", "limits"],
)
envlist = arr(
    "Extra environment variables (Kubernetes EnvVar objects).",
    {
        "type": "object",
        "description": "A Kubernetes EnvVar.",
        "required": ["name"],
        "additionalProperties": True,
        "properties": {"name": {"type": "string", "description": "Variable name.", "minLength": 1}},
    },
)

queue_props = {
    "timeLimit": pos("Hard time limit of the queue's tasks, seconds (QueueSpec.time_limit)."),
    "softTimeLimit": pos("Soft time limit, seconds (QueueSpec.soft_time_limit)."),
    "concurrency": pos("Worker processes per pod (QueueSpec.concurrency)."),
    "prefetchMultiplier": pos("worker_prefetch_multiplier (QueueSpec.prefetch_multiplier); keep it 1."),
    "terminationGracePeriodSeconds": pos("Seconds a pod may drain on SIGTERM; >= timeLimit + graceMarginSeconds."),
    "graceMarginSeconds": pos("Smallest margin between the grace period and timeLimit.", 0),
    "minReplicaCount": pos("KEDA minReplicaCount.", 0),
    "maxReplicaCount": pos("KEDA maxReplicaCount."),
    "listLength": pos("KEDA listLength (tasks per pod); 0 means concurrency.", 0),
    "activationListLength": pos("KEDA activationListLength.", 0),
    "backlogAlertSeconds": pos("Backlog alert threshold, seconds; 0 means timeLimit / 5.", 0),
    "pollingInterval": pos("KEDA pollingInterval, seconds."),
    "cooldownPeriod": pos("KEDA cooldownPeriod, seconds; longer than the grace period."),
    "retryBackoffMaxSeconds": pos("Cap of the retry backoff, seconds (QueueSpec.retry.backoff_max).", 0),
    "scaleDown": obj(
        "HPA scale-down behaviour.",
        {
            "stabilizationWindowSeconds": pos("Scale-down stabilization window; longer than the grace period.", 0),
            "pods": pos("Pods removed at most per period."),
            "periodSeconds": pos("Period of the scale-down policy, seconds."),
        },
    ),
    "scaleUp": obj(
        "HPA scale-up behaviour.",
        {
            "stabilizationWindowSeconds": pos("Scale-up stabilization window.", 0),
            "pods": pos("Pods added at most per period."),
            "periodSeconds": pos("Period of the scale-up policy, seconds."),
        },
    ),
    "fallback": obj(
        "KEDA fallback while metrics fail.",
        {
            "failureThreshold": pos("Failed reads before the fallback applies."),
            "replicas": pos("Replicas held at least while metrics fail.", 0),
        },
    ),
    "resources": resources,
    "podDisruptionBudget": obj(
        "PodDisruptionBudget of the pool.",
        {
            "enabled": s("boolean", "Create the PodDisruptionBudget."),
            "maxUnavailable": pos("maxUnavailable of the budget."),
        },
    ),
    "extraEnv": envlist,
    "nodeSelector": free("nodeSelector of the worker pods."),
    "tolerations": arr("Tolerations of the worker pods."),
    "affinity": free("Affinity of the worker pods."),
    "evictionProtection": s(
        "boolean",
        "Annotate the pods so Cluster Autoscaler and Karpenter do not evict them when the grace period exceeds 600 s.",
    ),
    "podAnnotations": free("Extra annotations of the worker pods."),
    "priorityClassName": s("string", "PriorityClass of the worker pods; empty means the cluster default."),
    "topologySpreadConstraints": arr(
        "topologySpreadConstraints of the worker pods; an entry without labelSelector gets the queue's selector."
    ),
    "podLabels": free("Extra labels of the worker pods (never in selectors)."),
}
queue_entry = obj(
    "A queue of the registry; any key of workerDefaults overrides the default.",
    {
        "name": s("string", "Queue name, as in taskfleet_core.tasks.queues.QUEUES.", pattern="^[a-z][a-z0-9-]{0,40}$"),
        "image": s("string", "Image of this queue's worker; default <registry>/taskfleet-worker-<name>:<tag>."),
        **queue_props,
    },
    required=["name"],  # every other key falls back to workerDefaults
)

schema = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "taskfleet chart values",
    "type": "object",
    "additionalProperties": False,
    "required": ["image", "queues", "workerDefaults", "keda", "valkey", "beat", "api"],
    "properties": {
        "global": free("Helm's global values (unused)."),
        "nameOverride": s("string", "Override the chart name part of object names."),
        "fullnameOverride": s("string", "Override the full object name prefix."),
        "commonLabels": {
            "type": "object",
            "description": "Labels on every object.",
            "additionalProperties": {"type": "string"},
        },
        "image": obj(
            "Images of the six services.",
            {
                "registry": s("string", "Registry and path prefix.", minLength=1),
                "tag": s("string", "Tag of every service image; empty means appVersion."),
                "pullPolicy": s("string", "Image pull policy.", enum=["Always", "IfNotPresent", "Never"]),
            },
            required=["registry"],
        ),
        "images": {
            "type": "object",
            "description": "Full image references by service (api, beat, queue-exporter, worker-<queue>).",
            "additionalProperties": {"type": "string", "minLength": 1},
            "propertyNames": {"pattern": "^(api|beat|queue-exporter|worker-[a-z][a-z0-9-]*)$"},
        },
        "imagePullSecrets": arr("Pull secrets for every pod."),
        "serviceAccount": obj(
            "The fleet's ServiceAccount.",
            {
                "create": s("boolean", "Create it."),
                "name": s("string", "Its name."),
                "annotations": free("Its annotations."),
            },
        ),
        "podSecurityContext": obj(
            "Pod securityContext of fleet pods; non-root is not optional.",
            {
                "runAsNonRoot": {"const": True, "description": "Must be true."},
                "runAsUser": pos("UID; never 0."),
                "runAsGroup": pos("GID.", 1),
                "fsGroup": pos("fsGroup.", 1),
                "seccompProfile": free("Seccomp profile."),
            },
            required=["runAsNonRoot", "runAsUser"],
        ),
        "containerSecurityContext": obj(
            "Container securityContext of fleet containers.",
            {
                "allowPrivilegeEscalation": {"const": False, "description": "Must be false."},
                "readOnlyRootFilesystem": {"const": True, "description": "Must be true."},
                "runAsNonRoot": {"const": True, "description": "Must be true."},
                "capabilities": free("Capabilities; ALL is dropped."),
                "seccompProfile": free("Seccomp profile."),
            },
            required=["allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsNonRoot", "capabilities"],
        ),
        "config": obj(
            "Settings every fleet process reads.",
            {
                "logLevel": s("string", "LOG_LEVEL.", enum=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
                "visibilityTimeoutSeconds": s(
                    "integer",
                    "BROKER_VISIBILITY_TIMEOUT_SECONDS; 0 derives it: max over queues of 2 x timeLimit and "
                    "retryBackoffMaxSeconds + timeLimit. A set value below that fails the render.",
                    minimum=0,
                ),
                "beatScheduleEnabled": s("boolean", "CELERY_BEAT_SCHEDULE_ENABLED."),
                "pipelineSyncIntervalHours": s("integer", "PIPELINE_SYNC_INTERVAL_HOURS.", minimum=1, maximum=24),
                "syncScheduleHour": s("integer", "SYNC_SCHEDULE_HOUR (UTC).", minimum=0, maximum=23),
                "extraEnv": envlist,
            },
        ),
        "database": obj(
            "DATABASE_URL source.",
            {
                "url": s("string", "DATABASE_URL.", pattern="^(sqlite\\+aiosqlite|postgresql\\+asyncpg)://"),
                "existingSecret": s("string", "Secret holding DATABASE_URL."),
                "secretKey": s("string", "Key in that Secret.", minLength=1),
            },
        ),
        "migrations": obj(
            "Alembic migrations as a Helm hook Job (shared databases only).",
            {
                "enabled": s("boolean", "Render the migration hook Job."),
                "backoffLimit": pos("backoffLimit of the Job.", 0),
                "activeDeadlineSeconds": pos("activeDeadlineSeconds of the Job."),
                "resources": resources,
            },
        ),
        "apiTokens": obj(
            "API_TOKENS (admin) and API_READ_TOKENS (read-only) of the job API.",
            {
                "tokens": s("string", "Admin bearer tokens, comma-separated (chart-created Secret)."),
                "readTokens": s("string", "Read-only bearer tokens, comma-separated (chart-created Secret)."),
                "existingSecret": s("string", "Secret holding API_TOKENS and optionally API_READ_TOKENS."),
                "secretKey": s("string", "Key of API_TOKENS in existingSecret.", minLength=1),
                "readSecretKey": s("string", "Key of API_READ_TOKENS in existingSecret.", minLength=1),
            },
        ),
        "smtp": obj(
            "SMTP settings of the email worker.",
            {
                "host": s("string", "SMTP_HOST.", minLength=1),
                "port": s("integer", "SMTP_PORT.", minimum=1, maximum=65535),
                "starttls": s("boolean", "SMTP_STARTTLS."),
                "username": s("string", "SMTP_USERNAME (chart-created Secret)."),
                "password": s("string", "SMTP_PASSWORD (chart-created Secret)."),
                "existingSecret": s("string", "Secret holding the SMTP login."),
                "usernameKey": s("string", "Key of the user name in existingSecret.", minLength=1),
                "passwordKey": s("string", "Key of the password in existingSecret.", minLength=1),
            },
        ),
        "otel": obj(
            "OpenTelemetry export.",
            {
                "endpoint": s("string", "OTEL_EXPORTER_OTLP_ENDPOINT (chart-created Secret)."),
                "existingSecret": s("string", "Secret holding the OTLP endpoint."),
                "secretKey": s("string", "Key of the endpoint in existingSecret.", minLength=1),
            },
        ),
        "valkey": obj(
            "The broker and result backend.",
            {
                **placement("the Valkey pod"),
                "enabled": s("boolean", "Run Valkey in the chart."),
                "image": obj("Valkey image.", {"repository": s("string", "Repository."), "tag": s("string", "Tag.")}),
                "database": s("integer", "Database index.", minimum=0, maximum=15),
                "port": s("integer", "Port.", minimum=1, maximum=65535),
                "auth": obj(
                    "Password.",
                    {
                        "existingSecret": s("string", "Secret with the password."),
                        "secretKey": s("string", "Key of the password.", minLength=1),
                        "username": s(
                            "string",
                            "ACL user of an external Valkey (empty: default user).",
                            pattern="^[A-Za-z0-9._-]*$",
                        ),
                        "usernameKey": s("string", "Key of the ACL user name in the Secret.", minLength=1),
                        "tlsKey": s("string", "Key holding 'enable' for KEDA's TLS switch.", minLength=1),
                        "password": s("string", "Password of the chart-created Secret (URL-safe characters)."),
                    },
                ),
                "external": obj(
                    "External Valkey.",
                    {
                        "host": s("string", "Host."),
                        "tls": obj(
                            "TLS to the external Valkey.",
                            {
                                "enabled": s("boolean", "Use rediss://."),
                                "caSecret": s("string", "Secret with the CA certificate (key caKey)."),
                                "caKey": s("string", "Key of the CA certificate in caSecret.", minLength=1),
                            },
                        ),
                    },
                ),
                "persistence": obj(
                    "Data volume.",
                    {
                        "size": s("string", "Size.", pattern="^[0-9]+[KMGT]i$"),
                        "storageClass": s("string", "StorageClass."),
                    },
                ),
                "metrics": obj(
                    "redis_exporter sidecar of the in-chart Valkey.",
                    {
                        "enabled": s("boolean", "Run the sidecar."),
                        "image": obj(
                            "Exporter image.", {"repository": s("string", "Repository."), "tag": s("string", "Tag.")}
                        ),
                        "port": s("integer", "Exporter port.", minimum=1, maximum=65535),
                        "resources": resources,
                    },
                ),
                "maxmemory": s("string", "maxmemory, e.g. 1gb.", pattern="^[0-9]+(b|kb|mb|gb)?$"),
                "resources": resources,
            },
        ),
        "health": obj(
            "Worker and Beat health files.",
            {
                "dir": s("string", "Directory of the files.", pattern="^/"),
                "heartbeatIntervalSeconds": pos("Seconds between heartbeats."),
                "heartbeatMaxAgeSeconds": pos("Max heartbeat age for liveness."),
            },
        ),
        "workerDefaults": obj("Defaults every queue inherits.", queue_props, required=list(queue_props)),
        "queues": arr("One entry per queue of the registry.", queue_entry) | {"minItems": 1},
        "keda": obj(
            "KEDA autoscaling.",
            {
                "enabled": s("boolean", "Render ScaledObjects."),
                "prioritySeparator": s("string", "kombu's priority separator.", minLength=1),
                "prioritySteps": arr(
                    "Priority steps with a sub-list.", {"type": "integer", "minimum": 1, "maximum": 9}
                ),
                "unackedIndexKey": s("string", "In-flight ZSET key with {queue}.", pattern="\\{queue\\}"),
                "replicasWhenDisabled": pos("Replicas per queue without KEDA.", 0),
                "version": s(
                    "string",
                    "Installed KEDA version (checked against the minimum).",
                    pattern="^(v?[0-9]+\\.[0-9]+(\\.[0-9]+)?.*)?$",
                ),
                "requireApi": s("boolean", "Fail without keda.sh/v1alpha1 in the cluster's API versions."),
            },
        ),
        "scaleIn": obj(
            "How scale-in chooses its victims.",
            {
                "deletionCost": obj(
                    "Workers keep their pod's pod-deletion-cost equal to the work they hold.",
                    {
                        "enabled": s("boolean", "Patch the annotation; renders the workers' ServiceAccount and RBAC."),
                        "minIntervalSeconds": s(
                            "integer", "At most one PATCH per pod per this many seconds.", minimum=1, maximum=3600
                        ),
                        "tokenExpirationSeconds": s(
                            "integer", "Lifetime of the workers' projected token.", minimum=600, maximum=86400
                        ),
                    },
                ),
            },
        ),
        "beat": obj(
            "The singleton Beat.",
            {
                **placement("the beat pods"),
                "enabled": s("boolean", "Run Beat."),
                "lockTtlSeconds": s("integer", "Leader lock TTL, seconds.", minimum=10),
                "resources": resources,
            },
        ),
        "api": obj(
            "The job API.",
            {
                **placement("the api pods"),
                "replicas": pos("Replicas without HPA."),
                "port": s("integer", "Container port.", minimum=1024, maximum=65535),
                "service": obj(
                    "Service.",
                    {
                        "type": s("string", "Type.", enum=["ClusterIP", "NodePort", "LoadBalancer"]),
                        "port": s("integer", "Port.", minimum=1, maximum=65535),
                    },
                ),
                "ingress": obj(
                    "Ingress.",
                    {
                        "enabled": s("boolean", "Create it."),
                        "className": s("string", "IngressClass."),
                        "annotations": free("Annotations."),
                        "host": s("string", "Host."),
                        "tlsSecret": s("string", "TLS Secret."),
                    },
                ),
                "hpa": obj(
                    "CPU HPA.",
                    {
                        "enabled": s("boolean", "Create it."),
                        "minReplicas": pos("minReplicas."),
                        "maxReplicas": pos("maxReplicas."),
                        "targetCPUUtilizationPercentage": s("integer", "Target CPU %.", minimum=1, maximum=100),
                    },
                ),
                "podDisruptionBudget": obj(
                    "PDB.",
                    {
                        "enabled": s("boolean", "Create it."),
                        "minAvailable": pos("minAvailable.", 0),
                    },
                ),
                "resources": resources,
            },
        ),
        "flower": obj(
            "Flower.",
            {
                **placement("the flower pods"),
                "enabled": s("boolean", "Run Flower."),
                "image": obj("Image.", {"repository": s("string", "Repository."), "tag": s("string", "Tag.")}),
                "port": s("integer", "Port.", minimum=1024, maximum=65535),
                "basicAuth": obj("Basic auth.", {"existingSecret": s("string", "Secret with key auth.")}),
                "resources": resources,
            },
        ),
        "queueExporter": obj(
            "The queue exporter Deployment.",
            {
                **placement("the queueExporter pods"),
                "enabled": s("boolean", "Run it."),
                "resources": resources,
            },
        ),
        "metrics": obj("Metrics endpoint.", {"port": s("integer", "Port.", minimum=1024, maximum=65535)}),
        "monitoring": obj(
            "Prometheus operator and Grafana objects.",
            {
                "serviceMonitor": obj(
                    "ServiceMonitor.", {"enabled": s("boolean", "Create it."), "interval": s("string", "Interval.")}
                ),
                "podMonitor": obj(
                    "PodMonitor.", {"enabled": s("boolean", "Create it."), "interval": s("string", "Interval.")}
                ),
                "prometheusRule": obj(
                    "PrometheusRule.",
                    {
                        "enabled": s("boolean", "Create it."),
                        "alerts": obj(
                            "Thresholds of the chart's own alerts.",
                            {
                                "autoscalerAtMaxFor": s(
                                    "string", "for: of TaskfleetAutoscalerAtMax.", pattern="^[0-9]+(s|m|h)$"
                                ),
                                "valkeyMemory": obj(
                                    "TaskfleetValkeyMemoryHigh.",
                                    {
                                        "ratio": s("number", "used/maxmemory ratio.", exclusiveMinimum=0, maximum=1),
                                        "job": s("string", "Regex of the exporter's scrape job.", minLength=1),
                                    },
                                ),
                            },
                        ),
                    },
                ),
                "dashboards": obj(
                    "Dashboards.",
                    {
                        "enabled": s("boolean", "Create them."),
                        "label": s("string", "Sidecar label."),
                        "labelValue": s("string", "Label value."),
                    },
                ),
            },
        ),
        "networkPolicy": obj(
            "NetworkPolicies.",
            {
                "enabled": s("boolean", "Create them."),
                "kedaNamespace": s("string", "KEDA operator namespace."),
                "kedaPodLabels": {
                    "type": "object",
                    "description": "KEDA operator pod labels.",
                    "additionalProperties": {"type": "string"},
                },
                "apiFrom": arr("NetworkPolicyPeers allowed to reach the API port; empty means any source."),
                "flowerFrom": arr("NetworkPolicyPeers allowed to reach Flower; empty means this namespace."),
                "metricsNamespaceLabels": {
                    "type": "object",
                    "description": "Prometheus namespace labels.",
                    "additionalProperties": {"type": "string"},
                },
            },
        ),
        "tests": obj("helm test.", {"enabled": s("boolean", "Render the test pod.")}),
    },
}
vals = yaml.safe_load((CHART / "values.yaml").read_text())


def add_defaults(node, value):
    if isinstance(value, dict) and "properties" in node:
        for k, child in node["properties"].items():
            if k in value:
                add_defaults(child, value[k])
    if (not isinstance(value, dict) or "properties" not in node) and "description" in node:
        node["default"] = value


add_defaults(schema, vals)
text = json.dumps(schema, indent=2) + "\n"
target = CHART / "values.schema.json"
if "--check" in sys.argv:
    if target.read_text() != text:
        sys.exit("values.schema.json is stale: run charts/taskfleet/hack/schema.py")
else:
    target.write_text(text)
