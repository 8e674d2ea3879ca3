"""Runtime orchestration: put a model version into TorchServe and TF Serving, or take it out."""
