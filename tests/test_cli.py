"""``gateway --help`` and each command's help read as plain text in a terminal."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["validate"], ["rollout"], ["rollout", "start"], ["rollout", "controller"],
     ["report"], ["routes"], ["weights"], ["enable"], ["disable"], ["reload"], ["deploy"],
     ["undeploy"]],
)  # fmt: skip
def test_help_is_plain_text_with_a_description(command):
    run = subprocess.run(
        [sys.executable, "-m", "gateway", *command, "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    usage, description, *_ = run.stdout.split("\n\n")
    assert usage.startswith(f"usage: gateway {' '.join(command)}".rstrip())
    assert len(description.split()) >= 8, run.stdout  # a sentence, not a bare list of options
    for marker in ("``", ":class:", ":func:", "%(", "\t"):
        assert marker not in run.stdout, (marker, run.stdout)
    assert max(len(line) for line in run.stdout.splitlines()) <= 100, run.stdout
    if not command:
        assert "serve     run the gateway" in run.stdout
        assert "validate  check a config file and exit" in run.stdout
