"""loadtests.instructions: a handful of requests through this tree's gateway under callgrind."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from loadtests import instructions
from loadtests.benchmark import peers

REPO = Path(__file__).resolve().parents[2]


def test_sets_build_nested_keys_with_json_values() -> None:
    config: dict[str, object] = {"server": {"workers": 1}}
    instructions.apply_sets(
        config,
        [
            instructions.parse_set("server.workers=2"),
            instructions.parse_set("observability.tracing.enabled=true"),
            instructions.parse_set("logging.level=debug"),
        ],
    )
    assert config == {
        "server": {"workers": 2},
        "observability": {"tracing": {"enabled": True}},
        "logging": {"level": "debug"},
    }


def test_fit_config_leaves_out_a_benchmark_key_the_tree_refuses(tmp_path: Path) -> None:
    config = peers.gateway_config(peers.Upstreams(1, 2, (3, 4)), 0, 1)
    server = config["server"]
    assert isinstance(server, dict)
    server["no_such_key"] = 1
    fitted = instructions.fit_config(REPO, config, [], tmp_path)
    assert "no_such_key" not in fitted["server"]  # type: ignore[operator]
    assert fitted["models"] == config["models"]
    with pytest.raises(SystemExit, match="no_such_key"):
        instructions.fit_config(REPO, config, [(["server", "no_such_key"], 1)], tmp_path)


@pytest.mark.skipif(
    shutil.which("valgrind") is None or shutil.which("nginx") is None,
    reason="needs valgrind and nginx (the upstream; `make bench` installs it)",
)
def test_counts_instructions_per_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = instructions.main(
        ["--tree", str(REPO), "--requests", "6", "--warmup", "2", "--connections", "2",
         "--idle-s", "0.5", "--run-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    row = re.search(rf"^{re.escape(str(REPO))}\s+([\d,]+)\s+1\.000\s", out, re.MULTILINE)
    assert row is not None, out
    per_request = int(row.group(1).replace(",", ""))
    # A proxied request is some hundreds of thousands of instructions: the count is the
    # requests' own, with neither start-up (hundreds of millions) nor nothing in it.
    assert 50_000 < per_request < 5_000_000
    assert list(tmp_path.glob("0-*/callgrind.*.out.1"))


def test_says_which_tools_are_missing_instead_of_failing_in_popen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither valgrind nor nginx on it
    code = instructions.main(["--tree", str(REPO), "--run-dir", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "valgrind is missing: `make bench` installs it" in err
    assert "nginx is missing: `make bench` installs it" in err
    assert not (tmp_path / "run").exists()
