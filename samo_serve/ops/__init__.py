"""Running and sizing the service: the CLI, the local launcher, Serve configs, the planner, k8s, the report."""
