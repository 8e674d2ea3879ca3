"""The demo model store: the ``digits`` classifier in two versions, for TorchServe and TF Serving.

``python -m model_store.build`` trains both versions and regenerates every committed artifact.
"""
