"""The live control plane: the overlay of admin changes on top of the config file, its store in
``server.state_dir``, the plane that composes and applies them on every worker, and the admin
API on its own listener.

Modules: ``overlay`` (the overlay document and its edits, pure), ``store`` (the overlay file:
atomic writes, a lock shared by replicas), ``plane`` (compose, validate, persist, apply, watch,
audit), ``workers`` (how a change reaches every worker and is acknowledged), ``local`` (a plane
with its listener, watcher and SIGHUP in one event loop) and ``thread`` (the same on a thread of
the supervisor), ``auth`` (the bearer token), ``views`` (routes as JSON), ``requests``,
``admin_app`` and ``deploys`` (the admin API's routes), ``listener`` (its server), ``cli`` (the
commands on it).
"""
