"""taskfleet-capacity: a capacity simulator of a queue autoscaled by KEDA + HPA (docs/capacity.md)."""
