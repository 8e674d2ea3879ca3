"""The live control plane: the overlay of admin changes on top of the config file, its store in
``server.state_dir``, the plane that composes and applies them on every worker, and the admin
API on its own listener.

Modules: ``overlay`` (the overlay document and its edits, pure), ``store`` (the overlay file:
atomic writes, a lock shared by replicas), ``plane`` (compose, validate, persist, apply, watch),
``workers`` (how a change reaches every worker and is acknowledged), ``auth`` (the bearer
token), ``views`` (routes as JSON), ``admin_app`` (the admin API), ``listener`` (its server).
"""
