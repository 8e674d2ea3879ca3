"""TF Serving stand-in: TensorFlow Serving's gRPC and REST APIs over real SavedModels, in Python.

This is NOT TensorFlow Serving. The gateway project runs it where ``tensorflow_model_server`` cannot
be installed (no Docker, no wheel). It loads every selected version of each configured SavedModel
with TensorFlow and answers like the real server as far as a client can see: the same gRPC services
(from the official ``tensorflow-serving-api`` definitions), REST paths, JSON shapes, error bodies,
status codes and error messages for the same faults, and Prometheus metrics of the same names.

Behaviours a client may notice, all as in TF Serving unless said otherwise:

- Predict responses carry values in the typed ``*_val`` fields (``float_val``...), not in
  ``tensor_content``: TF Serving's ServerCore serialises "as proto fields by default, for backward
  compatibility". Requests may use either.
- No version and no label means the highest loaded version. An unknown model or version is
  NOT_FOUND (REST 404, "Servable not found for request: Latest(m)" / "Specific(m, 3)"); an unknown
  label is INVALID_ARGUMENT (REST 400, "Unrecognized servable version label: l").
- REST errors are ``{ "error": "<message>" }`` with TF Serving's status-code-to-HTTP mapping.
- Differences: models are loaded once at start (no file-system polling, no config reload, no
  batching, no MultiInference); the grpc.health.v1 service is served as well; every response says it
  comes from the stand-in (the ``Server`` header on REST, ``x-tfserving-standin`` trailing metadata
  on gRPC), and so does the first line of its log and ``--version``.

Run from the repository root: ``python -m deploy.local.tfserving_standin --model_config_file=F``.

Requests flow from a front end to the core and TensorFlow, and back:

- front ends: ``grpc_server`` / ``grpc_services``; ``rest_server`` (aiohttp) / ``rest_api``, with
  ``rest_routes`` (paths) and ``rest_bodies`` (request document, error bodies);
- REST JSON codecs: ``json_values`` (leaf values), ``json_tensors`` (nested lists),
  ``json_inputs`` (``instances`` / ``inputs``), ``json_outputs`` (response bodies) and
  ``json_examples`` (tf.Examples); the gRPC codec is ``tensor_proto``;
- the APIs: ``predict``, ``classify`` and ``regress`` (sharing ``examples``), ``metadata``,
  ``status``; ``core`` resolves a ModelSpec's version or label to a servable, ``runtime`` runs a
  signature with TensorFlow;
- start-up: ``flags``, ``config`` (model and monitoring configs), ``models`` (version policies and
  labels), ``servables`` (loading a SavedModel), ``server`` (lifetime) and ``cli`` (``main``);
- side channels: ``errors`` (statuses and their HTTP mapping), ``metrics``, ``identity`` (how the
  stand-in names itself), ``signatures``, ``formatting`` and ``limits``.

This package's ``__init__`` imports nothing, so that ``__main__`` prints the banner before
TensorFlow, imported by most modules here, logs anything.
"""
