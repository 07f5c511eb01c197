"""Surge: load tests and autoscaling experiments for AI agents, on Kubernetes or one machine."""

__version__ = "0.1.0"
