"""``digits`` on MLServer: a custom runtime that runs the TorchScript of each TorchServe archive.

Imported by MLServer (its own virtual environment, ``.venv-mlserver``), never by the gateway.
"""
