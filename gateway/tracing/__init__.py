"""OpenTelemetry tracing of inference requests: W3C trace context in and out, a server span per
request, a client span per backend call, OTLP export (see README "Tracing")."""
