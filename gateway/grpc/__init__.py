"""The gRPC front end: the Open Inference Protocol, TF Serving's and TorchServe's gRPC APIs."""

from gateway.grpc.server import GrpcFrontEnd

__all__ = ["GrpcFrontEnd"]
