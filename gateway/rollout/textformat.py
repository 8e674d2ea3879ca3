"""Reading sample lines of the Prometheus text format (0.0.4) — only the families asked for.

A gateway with 10,000 models writes a million lines per scrape: lines are filtered on their
metric name and a label substring before any parsing, and only those are parsed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str:
        for name, value in self.labels:
            if name == key:
                return value
        return ""


class FormatError(ValueError):
    """A line that is not a sample line of the text format."""


def parse_value(text: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    return float(text)


def _labels(line: str, start: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """The label set starting after ``{`` at ``start``; returns it and the index after ``}``."""
    labels: list[tuple[str, str]] = []
    i = start
    while True:
        while i < len(line) and line[i] in " ,":
            i += 1
        if i < len(line) and line[i] == "}":
            return tuple(labels), i + 1
        equals = line.find("=", i)
        if equals < 0 or equals + 1 >= len(line) or line[equals + 1] != '"':
            raise FormatError(f"bad label set: {line!r}")
        name = line[i:equals].strip()
        i = equals + 2
        value: list[str] = []
        while True:
            if i >= len(line):
                raise FormatError(f"unterminated label value: {line!r}")
            char = line[i]
            if char == "\\" and i + 1 < len(line):
                value.append(ESCAPES.get(line[i + 1], "\\" + line[i + 1]))
                i += 2
            elif char == '"':
                i += 1
                break
            else:
                value.append(char)
                i += 1
        labels.append((name, "".join(value)))


def parse_line(line: str) -> Sample:
    """``name{a="1",b="2"} 3.5 [timestamp]`` -> a Sample (the timestamp is dropped)."""
    line = line.strip()
    brace = line.find("{")
    space = line.find(" ")
    if brace >= 0 and (space < 0 or brace < space):
        name = line[:brace]
        labels, end = _labels(line, brace + 1)
        rest = line[end:].split()
    else:
        name, *rest = line.split()
        labels = ()
    if not rest:
        raise FormatError(f"no value: {line!r}")
    try:
        return Sample(name, labels, parse_value(rest[0]))
    except ValueError:
        raise FormatError(f"bad value: {line!r}") from None


def select(
    lines: Iterable[str], names: tuple[str, ...], must_contain: str = ""
) -> Iterator[Sample]:
    """The samples of metrics named ``names`` (a histogram's ``_bucket`` lines are named so)
    whose line contains ``must_contain`` (``model="digits"``)."""
    for line in lines:
        if not line.startswith(names) or (must_contain and must_contain not in line):
            continue
        sample = parse_line(line)
        if sample.name in names:
            yield sample
