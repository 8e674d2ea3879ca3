"""Progressive delivery: a rollout controller that walks a candidate through shadow and canary
steps on the gateway's own metrics, and promotes or rolls it back through the admin API.

``plan`` (the steps and gates), ``observations``/``sources``/``scrape`` (the metrics of every
replica), ``stats``/``gates`` (the verdicts), ``decide`` (pure decisions), ``state``/``store``
(persisted before acting), ``actuator``/``admin_client`` (the admin API), ``controller`` (the
loop), ``server`` (its HTTP API and the analysis for Flagger and Argo Rollouts), ``cli``.
"""
