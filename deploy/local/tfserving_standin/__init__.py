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
- ``ModelService/HandleReloadConfigRequest`` replaces the whole config: versions it no longer
  names are unloaded, new ones loaded on a thread (GetModelStatus shows START, LOADING,
  AVAILABLE, UNLOADING, END, and a failed load's error), the call waits only for models new by
  name, and labels on versions not yet available are refused (FAILED_PRECONDITION) unless
  ``--allow_version_labels_for_unavailable_models`` lets a new label wait for its version. The
  checks, codes and messages are ServerCore::ReloadConfig's (``config_checks``).
- Both APIs listen on 127.0.0.1 unless ``--standin_bind_address`` (the stand-in's own flag) says
  otherwise; the real server listens on every interface.
- Differences: the disk is read at start and on each reload, not polled; a new model whose base
  path is missing makes the reload wait until the caller gives up (the real one waits for ever);
  no batching, no MultiInference; the grpc.health.v1 service is served as well; every response
  says it comes from the stand-in (the ``Server`` header on REST, ``x-tfserving-standin``
  trailing metadata on gRPC), and so does the first line of its log and ``--version``.

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
- start-up and reloads: ``flags``, ``config`` (model and monitoring configs), ``config_checks``
  (ReloadConfig's validation and labels), ``models`` (version policies on the disk), ``manager``
  (each version's lifecycle, loads on a thread), ``servables`` (loading a SavedModel),
  ``server`` (lifetime) and ``cli`` (``main``);
- side channels: ``errors`` (statuses and their HTTP mapping), ``metrics``, ``identity`` (how the
  stand-in names itself), ``signatures``, ``formatting`` and ``limits``.

This package's ``__init__`` imports nothing, so that ``__main__`` prints the banner before
TensorFlow, imported by most modules here, logs anything.
"""
