"""The TF Serving stand-in (real TF Serving when installed) killed with SIGKILL under load, in a
50/50 split with a real TorchServe, then restarted on the same ports; a two-worker gateway.

Unpinned requests must all be answered (by TorchServe while TF Serving is gone), and the
restarted backend must get traffic again within 5 s of being ready. Sticky users (``x-user-id``)
whose rendezvous choice was TF Serving must keep getting answers (from their next choice) and
come back after the recovery; the others must never move.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from loadtests.chaos.client import HttpClient, Reply
from loadtests.chaos.driver import Sample, open_loop, run
from loadtests.chaos.figures import Figure, judged
from loadtests.chaos.processes import gateway_config, running_gateway
from loadtests.chaos.scenario import Context, Scenario
from loadtests.chaos.scenarios.common import sender

NAME = "backend killed under load"
STICKY = "sticky users of the killed variant"
KILLED, HEALTHY = "tf-v1", "torch-v1"
BACK_WITHIN_S = 5.0
VARIANTS = [
    {"name": KILLED, "backend": "tfserving", "model": "digits", "version": 1, "weight": 50},
    {"name": HEALTHY, "backend": "torchserve", "model": "digits", "version": 1, "weight": 50},
]


@dataclass(frozen=True)
class Timeline:
    killed: float
    ready: float
    """When the restarted backend answered its own status check with every version available."""


def measure(ctx: Context) -> list[Figure]:
    ctx.real.wait()
    config = gateway_config(
        ctx.real.backends_config(timeout_s=5), {"digits": {"variants": VARIANTS}}, workers=2
    )
    rate, sticky_rate = ctx.seconds(20, 40), ctx.seconds(10, 20)
    # Every user sends twice before the kill, and twice once the restarted backend is settled.
    users = int(ctx.seconds(10, 20))
    before_kill = 2 * users / sticky_rate + 0.5
    after_ready = BACK_WITHIN_S + 2 * users / sticky_rate + 0.5
    with running_gateway(ctx.run_dir / "gateway", config) as gateway:
        gateway.wait_models_ready(["digits"])
        gateway.wait_variants_ready("digits", [KILLED, HEALTHY])

        async def drive() -> tuple[list[Sample], list[Sample], Timeline]:
            client = HttpClient("127.0.0.1", gateway.port, timeout_s=15)
            stop = asyncio.Event()
            senders = [
                sender(client, "digits", f"u{u}", **{"x-user-id": f"u{u}"}) for u in range(users)
            ]

            async def sticky(index: int) -> tuple[Reply, str]:
                return await senders[index % users](index)

            unpinned = asyncio.create_task(open_loop(sender(client, "digits"), rate, 120, stop))
            pinned = asyncio.create_task(open_loop(sticky, sticky_rate, 120, stop))
            await asyncio.sleep(before_kill)
            await asyncio.to_thread(ctx.real.kill_tfserving)
            killed = time.monotonic()
            await asyncio.to_thread(ctx.real.restart_tfserving)
            while not await asyncio.to_thread(ctx.real.tfserving_ready):
                if time.monotonic() - killed > 90:
                    raise TimeoutError("the restarted backend was not ready in 90 s")
                await asyncio.sleep(0.1)
            ready = time.monotonic()
            await asyncio.sleep(after_ready)
            stop.set()
            result = await unpinned, await pinned, Timeline(killed, ready)
            await client.close()
            return result

        unpinned, sticky, timeline = run(drive())
    ctx.keep("unpinned", unpinned)
    ctx.keep("sticky", sticky)
    return [
        *unpinned_figures(unpinned, timeline),
        gateway.log_figure(NAME),
        *sticky_figures(sticky, timeline),
    ]


def unpinned_figures(samples: Sequence[Sample], at: Timeline) -> list[Figure]:
    failed = [s for s in samples if not s.ok]
    during = [s for s in samples if at.killed <= s.started < at.ready]
    back = [
        s.ended - at.ready
        for s in samples
        if s.ok and s.variant == KILLED and s.started >= at.ready
    ]
    first = min(back, default=float("inf"))
    settled = [s for s in samples if s.ok and s.started >= at.ready + BACK_WITHIN_S]
    statuses = sorted({s.status for s in failed})
    return [
        judged(
            NAME,
            f"unpinned failed of {len(samples)} ({len(during)} during the "
            f"{at.ready - at.killed:.1f} s outage)" + (f", statuses {statuses}" if failed else ""),
            len(failed),
            "req",
            "0",
            not failed,
        ),
        Figure(
            NAME,
            f"first answer from {KILLED} after it was ready",
            f"{first:.1f} s" if back else "none",
            f"<= {BACK_WITHIN_S:.0f} s",
            first <= BACK_WITHIN_S,
        ),
        Figure(
            NAME,
            f"{KILLED}'s share of unpinned answers {BACK_WITHIN_S:.0f} s after it was ready",
            f"{100 * sum(s.variant == KILLED for s in settled) / max(1, len(settled)):.0f} % "
            f"of {len(settled)}",
            "- (weight 50 %)",
            None,
        ),
    ]


def sticky_figures(samples: Sequence[Sample], at: Timeline) -> list[Figure]:
    by_user: dict[str, list[Sample]] = {}
    for sample in samples:
        by_user.setdefault(sample.tag, []).append(sample)
    home = {
        user: {s.variant for s in mine if s.ok and s.ended < at.killed}
        for user, mine in by_user.items()
    }
    victims = [u for u, seen in home.items() if seen == {KILLED}]
    others = [u for u, seen in home.items() if seen == {HEALTHY}]
    failed = sum(not s.ok for u in victims for s in by_user[u])
    answered = sum(
        any(s.ok for s in by_user[u] if at.killed <= s.started < at.ready) for u in victims
    )
    settled = at.ready + BACK_WITHIN_S
    returned = sum(
        bool(late := [s for s in by_user[u] if s.started >= settled])
        and all(s.ok and s.variant == KILLED for s in late)
        for u in victims
    )
    moved = sum(any(s.variant != HEALTHY for s in by_user[u] if s.ok) for u in others)
    n = len(victims)
    split = len(home) - n - len(others)
    return [
        judged(STICKY, "users served by both variants before the kill", split, "", "0", split == 0),
        judged(
            STICKY, f"failed requests of its {n} users", failed, "req", "0", n > 0 and failed == 0
        ),
        judged(
            STICKY, "users answered during the outage", answered, "", f"{n} (all)", answered == n
        ),
        judged(
            STICKY,
            f"users back on {KILLED} {BACK_WITHIN_S:.0f} s after it was ready",
            returned,
            "",
            f"{n} (all)",
            n > 0 and returned == n,
        ),
        judged(STICKY, f"other users ({len(others)}) moved", moved, "", "0", moved == 0),
    ]


SCENARIO = Scenario(
    NAME,
    "SIGKILL to TF Serving in a 50/50 split with TorchServe, unpinned and sticky users, restart",
    (35, 50),
    measure,
    needs_real=True,
)
