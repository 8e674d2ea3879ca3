"""The benchmark's steal reading: the hypervisor's share of CPU time between two readings of
/proc/stat, and what the report says of it."""

from __future__ import annotations

from pathlib import Path

from loadtests.benchmark import steal
from loadtests.benchmark.report import Report


def stat_file(path: Path, user: int, idle: int, stolen: int) -> Path:
    path.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 {stolen} 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    return path


def test_the_share_is_stolen_time_over_all_time(tmp_path: Path) -> None:
    before = steal.read(stat_file(tmp_path / "a", 100, 100, 0))
    after = steal.read(stat_file(tmp_path / "b", 150, 130, 20))
    assert before == steal.CpuTimes(200, 0)
    stolen = steal.share(before, after)
    assert stolen == 0.2
    assert "20.0% of all CPU time (over 5%" in steal.describe(stolen)
    assert steal.describe(0.01) == "CPU steal during the run: 1.0% of all CPU time"
    assert steal.share(after, before) is None
    assert steal.read(tmp_path / "missing") is None
    assert "not known" in steal.describe(None)


def test_this_machine_has_a_reading_and_the_report_shows_it() -> None:
    assert steal.read() is not None
    text = Report(steal=0.25).render()
    assert "CPU steal during the run: 25.0%" in text
    # The cases a run left out leave no empty tables behind.
    for title in ("Closed loop", "Fixed rate", "Routing decision", "Footprint", "Ratios"):
        assert title not in text
