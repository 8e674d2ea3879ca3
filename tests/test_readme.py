"""The README's configuration example is a config the gateway accepts."""

import re
from pathlib import Path

import yaml

from gateway.config import parse_config

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_config_example_is_valid():
    section = README.read_text().split("## Configuration", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None
    config = parse_config(yaml.safe_load(block.group(1)))
    assert {"tfserving", "torchserve", "triton"} <= set(config.backends)
    assert [v.weight for v in config.models["digits"].variants] == [40, 40, 10, 10]
