"""The controller's HTTP API: ``/healthz``, ``/plan``, ``/metrics``."""
