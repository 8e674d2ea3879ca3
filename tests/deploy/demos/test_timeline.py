"""The timeline from rollouts the controller's own decisions make: what each line says, and an
action retried every interval said once."""

from __future__ import annotations

from deploy.local.demos.timeline import Timeline, gate_text, shares
from gateway.rollout import decide
from gateway.rollout.plan import parse_plan
from tests.rollout.world import starting_variants


def test_a_failing_action_is_said_once_then_counted():
    plan = parse_plan({"steps": [{"kind": "canary", "weight": 25}]})
    rollout = decide.begin("digits", ["tf-v3"], plan, list(starting_variants().values()), 100.0)
    lines: list[str] = []
    timeline = Timeline(started=100.0, write=lines.append)
    timeline.update(rollout)
    for attempt in range(3):
        failed = decide.ActionResult(ok=False, error=f"PATCH tf-v1: 503 busy ({attempt})")
        rollout = decide.after_action(rollout, failed, 101.0 + attempt)
    rollout = decide.after_action(rollout, decide.ActionResult(ok=False, error="x (3)"), 104.0)
    timeline.update(rollout)
    assert rollout.phase == "rolling_back"  # 3 failed attempts of a step: rolled back
    for attempt in range(4):
        failed = decide.ActionResult(ok=False, error=f"PATCH tf-v3: 503 busy ({attempt})")
        rollout = decide.after_action(rollout, failed, 105.0 + attempt)
    rollout = decide.after_action(rollout, decide.ActionResult(ok=True), 110.0)
    timeline.update(rollout)
    text = "\n".join(lines)
    assert lines[0] == "    0.0s  start       started"
    assert text.count("action failed") == 3  # step attempt 1, rollback attempts 1 and 5
    assert "(the same 2 more times)" in text  # the step's attempts 2 and 3
    assert "-> ROLL BACK" in text
    assert "(the same 3 more times)" in text  # the rollback's attempts 2 to 4
    assert lines[-2:] == [
        "   10.0s  start       action done: rolled back  -> rolled back",
        "                    split: tf-v1 50.0%  torch-v1 50.0%",
    ]


def test_shares_and_gates_read_as_a_person_says_them():
    assert shares({"tf-v1": 390, "torch-v1": 390, "tf-v3": 130, "torch-v3": 130, "x": 0}) == (
        "tf-v1 37.5%  torch-v1 37.5%  tf-v3 12.5%  torch-v3 12.5%"
    )
    assert shares({"tf-v1": 0}) == ""
    assert gate_text(
        {"gate": "error_rate", "verdict": "pass", "value": 0.0, "threshold": 0.05}
    ) == ("error_rate pass +0.0000 (limit +0.0500)")
    assert gate_text({"gate": "latency", "verdict": "fail", "value": 2.5, "threshold": 1.5}) == (
        "latency fail 2.500x (limit 1.500x)"
    )
    assert gate_text({"gate": "divergence", "verdict": "nodata", "value": None}) == (
        "divergence nodata -"
    )
