"""``/metrics``: the Prometheus text format, rendered in slices between requests."""
