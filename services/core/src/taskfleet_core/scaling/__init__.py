"""How the fleet helps its autoscaler: hints a worker gives Kubernetes about itself."""
