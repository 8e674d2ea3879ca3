"""The HTTP front end: Open Inference Protocol REST, health and ``/metrics``."""
