"""The progress display and its records: lines with an estimate, in place on a terminal, and
JSON lines on disk as each step ends (read back while another process writes them)."""

from __future__ import annotations

import io
import json

from loadtests.progress import CLEAR_LINE, JsonLinesTail, Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_are_short():
    assert [duration(s) for s in (0, 9.4, 75, 3600, 3725)] == [
        "0s",
        "9s",
        "1m15s",
        "1h00m",
        "1h02m",
    ]


def test_each_step_is_a_line_with_what_is_left_and_a_record(tmp_path):
    out, clock, records = io.StringIO(), Clock(), tmp_path / "raw" / "steps.jsonl"
    progress = Progress("bench", 40, steps=4, out=out, records=records, clock=clock)
    clock.now += 30
    progress.advance(10, "closed: envoy-2, round 1/2", requests_per_s=34_700.5)
    clock.now += 30
    progress.advance(10, "closed: gateway-2, round 1/2")
    progress.say("case closed done")
    progress.finish()
    assert out.getvalue().splitlines() == [
        "bench [1/4  25%] closed: envoy-2, round 1/2 · 30s in, ~1m30s left",
        "bench [2/4  50%] closed: gateway-2, round 1/2 · 1m00s in, ~1m00s left",
        "case closed done",
        "bench: done in 1m00s",
    ]
    first, second = (json.loads(line) for line in records.read_text().splitlines())
    assert first["message"] == "closed: envoy-2, round 1/2"
    assert first["requests_per_s"] == 34_700.5
    assert (first["step"], first["done"], first["elapsed_s"]) == (1, 10, 30)
    assert (second["step"], second["total"]) == (2, 40)


def test_on_a_terminal_one_line_is_rewritten_in_place():
    out, clock = io.StringIO(), Clock()
    progress = Progress("loadtest", 60, out=out, live=True, clock=clock)
    assert progress.line("starting").endswith("time left unknown")
    clock.now += 5
    progress.at(5, "12 users")
    clock.now += 5
    progress.at(10, "12 users")
    progress.say("a message that stays")
    text = out.getvalue()
    assert text.startswith(f"{CLEAR_LINE}loadtest [  8%] 12 users · 5s in, ~55s left")
    assert f"{CLEAR_LINE}loadtest [ 17%] 12 users · 10s in, ~50s left{CLEAR_LINE}" in text
    assert text.endswith("a message that stays\n")
    assert text.count("\n") == 1


def test_a_tail_reads_only_finished_lines(tmp_path):
    path = tmp_path / "snapshots.jsonl"
    tail = JsonLinesTail(path)
    assert tail.new() == []  # not written yet
    path.write_text('{"elapsed_s": 5}\n{"elapsed_')
    assert tail.new() == [{"elapsed_s": 5}]
    with path.open("a") as handle:
        handle.write('s": 10}\n')
    assert tail.new() == [{"elapsed_s": 10}]
    assert tail.new() == []
