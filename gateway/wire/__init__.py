"""Protobuf messages the gateway speaks, wire-compatible with TF Serving, TorchServe and KServe.

Generated from the ``.proto`` files here by ``python -m gateway.wire.build`` (``make protos``).
"""
