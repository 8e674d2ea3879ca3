"""The shadow process over real processes and sockets: a `gateway serve` whose worker hands
every sampled request to its child (at idle priority), the child calling real OIP servers; the
counts in the worker's /metrics (merged across workers), the ring through the admin API, plans
changed live, drops when the hand-off or the pool is full, and the child killed (the primaries
never notice, it comes back) or orphaned (it never is)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.process import ManagedProcess
from deploy.local.stack import gateway_process, start_all
from tests.support.admin import admin, admin_server, admin_url
from tests.support.http import call
from tests.support.slow_backend import slow_backend
from tests.support.stack import gateway_config

SHADOW = "gateway_shadow_requests_total"
BODY = json.dumps(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}]}
).encode()
JSON = {"content-type": "application/json"}
OTHER_REPLY = (
    b'{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"FP32",'
    b'"shape":[1,1],"data":[2.0]}]}'
)


def wait_for(condition: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def shadow_children(worker: int) -> list[int]:
    return [c for c in children(worker) if comm(c) == "gateway-shadow" and alive(c)]


def workers_of(supervisor: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found = []
    for child in children(supervisor):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes() and alive(child):
                found.append(child)
    return found


def shadow_counts(url: str) -> dict[str, float]:
    """``gateway_shadow_requests_total`` by result, summed over the pairs."""
    counts: dict[str, float] = {}
    for line in call(url + "/metrics").body.decode().splitlines():
        if line.startswith(SHADOW + "{"):
            labels, number = line.rsplit(" ", 1)
            result = labels.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = counts.get(result, 0.0) + float(number)
    return counts


def send(url: str, count: int, body: bytes = BODY) -> list[float]:
    """``count`` inferences one after the other; each one's seconds (every one must be 200)."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        reply = call(url + "/v2/models/m/infer", body, JSON)
        times.append(time.perf_counter() - started)
        assert reply.status == 200, reply.body
    return times


def config_for(
    run_dir: Path, ports: dict[str, int], shadow: dict[str, Any] | None, workers: int = 1
) -> dict[str, Any]:
    variants = [
        {"name": name, "backend": name, "version": "1", "weight": 1 if name == "a" else 0}
        for name in ports
    ]
    model: dict[str, Any] = {"variants": variants}
    if shadow is not None:
        model["shadow"] = shadow
    backends = {name: {"kind": "oip", "url": f"http://127.0.0.1:{p}"} for name, p in ports.items()}
    return gateway_config(
        None,
        backends=backends,
        models={"m": model},
        workers=workers,
        **admin_server(run_dir),
    )


@contextlib.contextmanager
def gateway(
    run_dir: Path, config: dict[str, Any], markers: tuple[str, ...] = ("Traceback", "ERROR")
) -> Iterator[tuple[ManagedProcess, str]]:
    """A real ``gateway serve``; yields the process and its URL. Its log must not have any of
    ``markers``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = config["server"]["http"]["port"]
    process = gateway_process(run_dir, path, port)
    start_all([process], timeout=60)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.stop()
    log = process.log_path.read_text(errors="replace")
    for marker in markers:
        assert marker not in log, f"gateway log {process.log_path} has {marker!r}:\n{log[-3000:]}"


def pid_of(process: ManagedProcess) -> int:
    assert process.popen is not None
    return process.popen.pid


def test_copies_go_through_the_shadow_process_and_plans_change_live(tmp_path):
    """No plan: no shadow process. A plan set through the admin API starts one (a child of the
    worker), every copy is counted in the worker's /metrics; another shadow variant reaches it
    live, and its diverging answers are the ring the admin API shows; no plan stops it."""
    with (
        slow_backend(0.0, 4) as u1,
        slow_backend(0.0, 4) as u2,
        slow_backend(0.0, 4, OTHER_REPLY) as u3,
    ):
        ports = {"a": u1.port, "b": u2.port, "c": u3.port}
        config = config_for(tmp_path, ports, None)
        api = admin_url(config)
        with gateway(tmp_path, config) as (process, url):
            worker = pid_of(process)
            send(url, 5)
            assert shadow_children(worker) == []
            reply = admin(api, "PUT", "/admin/models/m/shadow", {"variants": ["b"], "percent": 100})
            assert reply.status == 200, reply.body
            first = wait_for(lambda: shadow_children(worker))
            assert len(first) == 1
            # It lowers its own priority as it starts: only idle CPU time is left to it.
            assert wait_for(lambda: os.sched_getscheduler(first[0]) == os.SCHED_IDLE)
            assert os.sched_getscheduler(worker) == os.SCHED_OTHER
            send(url, 40)
            assert wait_for(lambda: shadow_counts(url).get("agree") == 40), shadow_counts(url)
            assert u2.snapshot().served == 40

            reply = admin(api, "PUT", "/admin/models/m/shadow", {"variants": ["c"]})
            assert reply.status == 200, reply.body
            send(url, 6)
            assert wait_for(lambda: shadow_counts(url).get("diverge") == 6), shadow_counts(url)
            assert shadow_children(worker) == first  # the same process, routed anew
            assert u3.snapshot().served == 6
            examples = admin(api, "GET", "/admin/models/m/shadow/examples").json()["examples"]
            assert len(examples) == 6
            assert {(e["primary"], e["shadow"], e["result"]) for e in examples} == {
                ("a", "c", "diverge")
            }
            assert examples[0]["primary_top"] == [[0]]
            assert examples[0]["max_abs_diff"] == pytest.approx(1.0)

            reply = admin(api, "PUT", "/admin/models/m/shadow", {"variants": []})
            assert reply.status == 200, reply.body
            assert wait_for(lambda: not alive(first[0]))
            send(url, 5)
            assert shadow_children(worker) == []
            assert u3.snapshot().received == 6


def test_a_killed_shadow_process_never_hurts_primaries_and_comes_back(tmp_path):
    """kill -9 of the shadow process: every primary is answered, and fast, while it is down;
    the copies it took with it count as dropped; a new one takes the next copies. kill -9 of
    the gateway (its worker) leaves no shadow process behind."""
    with slow_backend(0.0, 4) as u1, slow_backend(0.05, 4) as u2:
        shadow = {"variants": ["b"], "percent": 100}
        config = config_for(tmp_path, {"a": u1.port, "b": u2.port}, shadow)
        with gateway(tmp_path, config) as (process, url):
            worker = pid_of(process)
            (first,) = wait_for(lambda: shadow_children(worker))
            send(url, 10)
            assert wait_for(lambda: shadow_counts(url).get("agree") == 10)

            loaded = threading.Thread(target=send, args=(url, 30))
            loaded.start()  # copies on their way (each shadow call takes 50 ms)
            time.sleep(0.2)
            os.kill(first, signal.SIGKILL)
            times = send(url, 40)
            loaded.join()
            assert max(times) < 0.5
            second = wait_for(lambda: [p for p in shadow_children(worker) if p != first])
            assert len(second) == 1

            def settled() -> bool:
                counts = shadow_counts(url)
                return counts.get("agree", 0) + counts.get("dropped", 0) == 80

            assert wait_for(settled), shadow_counts(url)
            assert shadow_counts(url).get("dropped", 0) >= 1  # what it was doing when killed
            before = shadow_counts(url).get("agree", 0)
            send(url, 10)
            assert wait_for(lambda: shadow_counts(url).get("agree", 0) == before + 10)

            os.kill(worker, signal.SIGKILL)
            assert wait_for(lambda: not alive(second[0]), 5.0), "the shadow process outlived it"


def big_body(values: int) -> bytes:
    doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, values]}]}
    doc["inputs"][0]["data"] = [0.5] * values
    return json.dumps(doc).encode()


def test_a_full_hand_off_or_pool_drops_the_copy_and_never_the_primary(tmp_path):
    """The shadow process stopped (SIGSTOP): the socket and the worker's bounded buffer fill
    with large requests, and further copies are dropped by the worker while every primary is
    answered; resumed, it shadows what it had. A slow shadow with a pool of one running and one
    queued drops the rest in the shadow process, counted the same way."""
    with slow_backend(0.0, 4) as u1, slow_backend(0.3, 1) as u2:
        shadow = {"variants": ["b"], "percent": 100, "max_concurrent": 1, "max_queued": 1}
        config = config_for(tmp_path, {"a": u1.port, "b": u2.port}, shadow)
        with gateway(tmp_path, config) as (process, url):
            worker = pid_of(process)
            (child,) = wait_for(lambda: shadow_children(worker))
            send(url, 1)
            assert wait_for(lambda: shadow_counts(url).get("agree") == 1)

            os.kill(child, signal.SIGSTOP)
            try:
                times = send(url, 16, big_body(100_000))  # 600 kB each: 4 MiB is full after 7
                assert max(times) < 2.0
                dropped = shadow_counts(url).get("dropped", 0)
                assert 4 <= dropped <= 12, shadow_counts(url)
            finally:
                os.kill(child, signal.SIGCONT)

            def settled() -> dict[str, float] | None:
                counts = shadow_counts(url)
                return counts if sum(counts.values()) == 17 else None

            counts = wait_for(settled)
            assert counts is not None, shadow_counts(url)
            assert counts["agree"] >= 2  # the slot and the queue of the pool, after the resume
            assert shadow_children(worker) == [child]


def test_several_workers_each_have_one_and_metrics_merge(tmp_path):
    """Two workers, each with its own shadow process; /metrics counts every copy whichever
    worker answers the scrape; kill -9 of a worker takes its shadow process with it and the
    worker that replaces it has its own."""
    with slow_backend(0.0, 8) as u1, slow_backend(0.0, 8) as u2:
        shadow = {"variants": ["b"], "percent": 100}
        config = config_for(tmp_path, {"a": u1.port, "b": u2.port}, shadow, workers=2)
        # The supervisor's ERROR line says a worker was killed: here it was.
        with gateway(tmp_path, config, ("Traceback",)) as (process, url):
            leader = pid_of(process)
            workers = wait_for(lambda: len(workers_of(leader)) == 2 and workers_of(leader))
            assert workers, workers_of(leader)
            shadows = {w: wait_for(partial(shadow_children, w)) for w in workers}
            assert all(len(s) == 1 for s in shadows.values()), shadows
            threads = [threading.Thread(target=send, args=(url, 30)) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert wait_for(lambda: shadow_counts(url).get("agree") == 120), shadow_counts(url)
            assert {shadow_counts(url).get("agree") for _ in range(6)} == {120.0}

            victim = workers[0]
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda: not alive(shadows[victim][0]), 5.0)
            replaced = wait_for(
                lambda: [w for w in workers_of(leader) if w not in workers and shadow_children(w)]
            )
            assert replaced, workers_of(leader)
