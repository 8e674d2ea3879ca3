"""gateway: one observable front door over TensorFlow Serving and TorchServe."""

__version__ = "0.1.0"
