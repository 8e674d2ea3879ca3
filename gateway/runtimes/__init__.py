"""Runtime orchestration: put a model version into TorchServe and TF Serving with one call.

Called with plain values, returning plain results, never touching the router: the caller (the
admin API, ``gateway deploy``) adds the variants a deploy returns at weight 0 to the routing
table itself.

    deployer = setup.orchestrator(config, state_dir)
    request = setup.deploy_request(config, "digits", 3, [
        {"backend": "torchserve", "archive": "digits_v3.mar"},
        {"backend": "tfserving"},  # base_path only for a model new to TF Serving
    ])
    result = await deployer.deploy(request)      # DeployResult: ok, outcomes, variants
    result = await deployer.undeploy(request)

Modules: ``results`` (requests and results), ``orchestrator`` (deploy, rollback, undeploy),
``journal`` (the state directory: journal and lock), ``torchserve`` and ``tfserving`` (one client
per runtime), ``model_server_config`` (TF Serving's config: text format and edits), ``setup``
(from the gateway's config).
"""
