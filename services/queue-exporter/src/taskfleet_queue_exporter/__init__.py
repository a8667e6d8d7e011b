"""The queue exporter: one process reads every queue's depth, in-flight work, oldest message and DLQ size from
Valkey and serves them as Prometheus metrics, so dashboards and alerts see the same numbers KEDA scales on."""
