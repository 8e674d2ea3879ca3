"""Message size limits, the same on the gRPC and the REST API."""

# TF Serving sets no limit below int32 on gRPC messages, either way.
MAX_MESSAGE_BYTES = 2**31 - 1
