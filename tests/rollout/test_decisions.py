"""The controller's decisions against simulated metrics (the gateway's own families, scraped in
the text format), a simulated clock and an in-memory admin API: promote, roll back on each gate,
wait on no data (then pause), resume after a restart, and half-failed actions."""

from __future__ import annotations

from gateway.rollout import decide
from gateway.rollout.state import Action, Rollout
from tests.rollout.simulation import controller_for, fast_plan, run_until
from tests.rollout.world import Behaviour

CANDIDATES = ("tf-v3", "torch-v3")


def events(rollout: Rollout) -> list[str]:
    return [event.event for event in rollout.history]


def entered(rollout: Rollout) -> list[str]:
    return [
        e.event.removeprefix("action done: entered ")
        for e in rollout.history
        if "entered" in e.event
    ]


def pending(rollout: Rollout | None) -> Action:
    assert rollout is not None
    assert rollout.action is not None
    return rollout.action


def test_good_candidates_walk_every_step_and_are_promoted(world, controller):
    controller.start("digits", CANDIDATES, fast_plan())
    assert world.admin.shadow.variants == ("tf-v3", "torch-v3", "torch-v1")  # + the noise pair
    shares_seen = []

    def watch(rollout):
        shares_seen.append(world.admin.share("tf-v3") + world.admin.share("torch-v3"))
        return rollout.finished

    rollout = run_until(controller, world, watch)
    assert rollout.phase == "succeeded", rollout.reason
    assert entered(rollout) == [
        "shadow", "canary 5%", "canary 25%", "canary 50%", "canary 100%", "bake"
    ]  # fmt: skip
    variants = world.admin.variants_now
    # The candidates took their counterparts' weights and labels; the old ones are disabled.
    assert (variants["tf-v3"].weight, variants["tf-v3"].labels) == (40, ("stable",))
    assert (variants["torch-v3"].weight, variants["torch-v3"].labels) == (40, ("stable",))
    assert not variants["tf-v1"].enabled
    assert not variants["torch-v1"].enabled
    assert world.admin.shadow.variants == ()  # shadowing turned off again
    # The candidates' share only ever took the plan's values.
    assert {round(s, 3) for s in shares_seen} <= {0.0, 0.05, 0.25, 0.5, 1.0}
    # Every evaluation's verdicts were pass or nodata: nothing failed on the way.
    assert all(g["verdict"] != "fail" for e in rollout.history for g in e.gates)
    assert controller.metrics.registry.get_sample_value(
        "gateway_rollout_state", {"model": "digits", "state": "succeeded"}
    ) == 1.0  # fmt: skip
    assert controller.metrics.registry.get_sample_value(
        "gateway_rollout_step", {"model": "digits"}
    ) == len(rollout.plan.steps)  # fmt: skip


def _rolled_back_within_one_interval(rollout: Rollout) -> None:
    assert rollout.phase == "rolled_back"
    (failed,) = [e for e in rollout.history if e.event == "rolling back"]
    done = next(e for e in rollout.history if e.event == "action done: rolled back")
    assert done.at - failed.at <= rollout.plan.interval
    assert any(g["verdict"] == "fail" for g in failed.gates)


def _restored(world) -> None:
    variants = world.admin.variants_now
    for name in ("tf-v1", "torch-v1"):
        assert (variants[name].weight, variants[name].enabled) == (40, True)
    for name in CANDIDATES:
        assert (variants[name].weight, variants[name].enabled) == (0, False)
    assert world.admin.shadow.variants == ()


def test_a_candidate_with_errors_is_rolled_back_at_the_first_canary_step(world, controller):
    world.behaviour["torch-v3"] = Behaviour(error_rate=0.2, divergence=0.02)
    controller.start("digits", CANDIDATES, fast_plan())
    rollout = run_until(controller, world, lambda r: r.finished)
    _rolled_back_within_one_interval(rollout)
    assert "error_rate failed" in rollout.reason
    assert entered(rollout) == ["shadow", "canary 5%"]
    _restored(world)


def test_a_slow_candidate_is_rolled_back_on_latency(world, controller):
    world.behaviour["tf-v3"] = Behaviour(latency_s=0.04, divergence=0.02)  # 10x the baseline
    controller.start("digits", CANDIDATES, fast_plan())
    rollout = run_until(controller, world, lambda r: r.finished)
    _rolled_back_within_one_interval(rollout)
    assert "latency failed" in rollout.reason
    assert "error_rate" not in rollout.reason
    _restored(world)


def test_a_slightly_slower_candidate_is_not_aborted(world, controller):
    """Within the allowed ratio: the bound never turns bucket noise into an abort."""
    world.behaviour["tf-v3"] = Behaviour(latency_s=0.0052, divergence=0.02)  # 1.3x
    controller.start("digits", CANDIDATES, fast_plan())
    rollout = run_until(controller, world, lambda r: r.finished)
    assert rollout.phase == "succeeded", rollout.reason


def test_a_diverging_candidate_is_rolled_back_in_the_shadow_step(world, controller):
    world.behaviour["tf-v3"] = Behaviour(divergence=0.45)  # digits v4: 45% other top classes
    controller.start("digits", CANDIDATES, fast_plan())
    shares: list[float] = []

    def watch(rollout: Rollout) -> bool:
        shares.append(world.admin.share("tf-v3"))
        return rollout.finished

    rollout = run_until(controller, world, watch)
    _rolled_back_within_one_interval(rollout)
    assert "divergence failed" in rollout.reason
    assert entered(rollout) == ["shadow"]
    assert set(shares) == {0.0}  # it never served a client
    _restored(world)


def test_noise_is_subtracted_from_divergence(world, controller):
    """Both runtimes of the same version disagree 10% of the time (noisy outputs): a candidate
    diverging as much is not blamed for it."""
    world.noise_divergence = 0.10
    for name in CANDIDATES:
        world.behaviour[name] = Behaviour(divergence=0.10)
    controller.start("digits", CANDIDATES, fast_plan(steps=[fast_plan().steps[0].model_dump()]))
    rollout = run_until(controller, world, lambda r: r.finished)
    assert rollout.phase == "succeeded", rollout.reason


def test_no_traffic_means_waiting_then_a_pause_never_an_abort(world, controller):
    controller.start("digits", CANDIDATES, fast_plan())
    run_until(controller, world, lambda r: r.step == 1)  # canary 5%
    world.rps = 0.5  # far too little for 200 requests a side
    rollout = run_until(controller, world, lambda r: r.phase == "waiting")
    assert "of 200 requests" in rollout.reason
    rollout = run_until(controller, world, lambda r: r.phase == "paused")
    assert rollout.reason.startswith("not enough data after 120s of waiting")
    assert "waiting" in events(rollout)
    assert "paused" in events(rollout)
    # Paused, it holds: the weights stay, nothing is rolled back.
    for _ in range(30):
        world.advance(10)
        controller.tick()
    held = controller.status("digits")
    assert held is not None
    assert (held.phase, held.step) == ("paused", 1)
    assert round(world.admin.share("tf-v3") + world.admin.share("torch-v3"), 3) == 0.05
    # Traffic is back and an operator resumes: it goes on to the end.
    world.rps = 50
    controller.command("digits", "resume")
    rollout = run_until(controller, world, lambda r: r.finished)
    assert rollout.phase == "succeeded", rollout.reason


def test_unreadable_metrics_are_no_data(world, controller):
    controller.start("digits", CANDIDATES, fast_plan())
    run_until(controller, world, lambda r: r.step == 1)

    def down(url, timeout):
        from gateway.rollout.sources import MetricsUnavailable

        raise MetricsUnavailable(f"{url}: connection refused")

    source = controller.source(fast_plan())
    source._fetch = down  # the replica stops answering scrapes
    rollout = run_until(controller, world, lambda r: r.phase == "paused")
    assert "metrics unavailable" in rollout.reason
    assert "connection refused" in rollout.reason
    assert rollout.step == 1


def test_a_restarted_controller_resumes_where_it_was(world, tmp_path):
    state = tmp_path / "state"
    first = controller_for(world, state)
    first.start("digits", CANDIDATES, fast_plan())
    before = run_until(first, world, lambda r: r.step == 2)  # canary 25%
    del first  # the process is gone; its scrape history with it
    second = controller_for(world, state)
    resumed = second.status("digits")
    assert resumed == before
    rollout = run_until(second, world, lambda r: r.finished)
    assert rollout.phase == "succeeded", rollout.reason
    # No step was entered twice, and the history runs on from the first controller's.
    assert entered(rollout) == [
        "shadow", "canary 5%", "canary 25%", "canary 50%", "canary 100%", "bake"
    ]  # fmt: skip
    assert rollout.history[: len(before.history)] == before.history


def test_an_action_interrupted_before_it_ran_is_carried_out_after_a_restart(world, tmp_path):
    state = tmp_path / "state"
    first = controller_for(world, state)
    first.start("digits", CANDIDATES, fast_plan())
    rollout = run_until(first, world, lambda r: r.step == 1)
    # The controller decided (and persisted) a rollback, then died before acting on it.
    first.store.save(decide.abort(rollout, world.now, "operator"))
    assert world.admin.variants_now["tf-v3"].enabled
    second = controller_for(world, state)
    after = second.evaluate("digits")
    assert after is not None
    assert after.phase == "rolled_back"
    _restored(world)


def test_a_half_failed_step_is_visible_then_retried(world, controller):
    controller.start("digits", CANDIDATES, fast_plan())
    run_until(controller, world, lambda r: r.step == 1)
    failures: list[str] = []

    def once(variant, body):
        # The canary 25% step: its second change (torch-v3's weight) fails once.
        if body.get("weight", 0) > 26 and variant == "torch-v3" and not failures:
            failures.append(variant)
            return "503 the gateway is applying another change"
        return None

    world.admin.fail = once
    rollout = run_until(controller, world, lambda r: r.action is not None and r.action.attempts > 0)
    action = pending(rollout)
    assert str(action.last_error).endswith("the gateway is applying another change")
    assert action.applied == ("tf-v3: weight 26 -> 130",)  # half done, and said so
    assert "action failed" in events(rollout)
    rollout = run_until(controller, world, lambda r: r.action is None)
    assert rollout.step == 2
    assert world.admin.variants_now["torch-v3"].weight == 130
    assert round(world.admin.share("tf-v3") + world.admin.share("torch-v3"), 3) == 0.25


def test_a_step_that_keeps_failing_is_undone(world, controller):
    controller.start("digits", CANDIDATES, fast_plan())
    run_until(controller, world, lambda r: r.step == 1)
    world.admin.fail = lambda variant, body: (
        "500 broken" if variant == "torch-v3" and body.get("weight", 0) > 26 else None
    )
    rollout = run_until(controller, world, lambda r: r.finished)
    assert rollout.phase == "rolled_back"
    assert rollout.reason == "could not apply step: 500 broken"
    assert events(rollout).count("action failed") == rollout.plan.max_action_attempts
    _restored(world)


def test_a_rollback_that_fails_is_retried_until_it_is_done(world, controller):
    controller.start("digits", CANDIDATES, fast_plan())
    run_until(controller, world, lambda r: r.step == 1)
    world.admin.fail = lambda variant, body: "503 unavailable"
    controller.command("digits", "abort")
    rollout = run_until(controller, world, lambda r: pending(r).attempts >= 5)
    assert rollout.phase == "rolling_back"
    assert str(pending(rollout).last_error).endswith("503 unavailable")
    world.admin.fail = lambda variant, body: None
    rollout = run_until(controller, world, lambda r: r.finished)
    assert rollout.phase == "rolled_back"
    _restored(world)


def test_operator_promote_skips_the_remaining_steps(world, controller):
    controller.start("digits", CANDIDATES, fast_plan())
    run_until(controller, world, lambda r: r.step == 1)
    rollout = controller.command("digits", "promote")
    assert rollout.phase == "succeeded"
    assert world.admin.variants_now["tf-v3"].weight == 40
    assert not world.admin.variants_now["tf-v1"].enabled
