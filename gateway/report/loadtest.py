"""Accuracy per variant from a Locust run of the suite (``loadtests/reports/
loadtest_variants.json``): the gateway never sees labels, the load test knows each digit's.

Only the fields the report needs are read (``digits``: labelled digits classified, ``correct``:
of them, argmax == label), so a newer file with more fields still reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.report.collect import Report


class LoadtestReportError(Exception):
    pass


def accuracy(path: Path) -> dict[str, tuple[float, int]]:
    """Variant -> (accuracy, labelled digits)."""
    try:
        variants = json.loads(path.read_text())["variants"]
        found = {}
        for name, doc in variants.items():
            digits, correct = int(doc.get("digits", 0)), int(doc.get("correct", 0))
            if name and digits:
                found[name] = (correct / digits, digits)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise LoadtestReportError(f"cannot read the load test report {path}: {error}") from None
    return found


def add_accuracy(report: Report, path: Path) -> None:
    for name, (value, digits) in accuracy(path).items():
        variant = report.variants.get(name)
        if variant is not None:
            variant.accuracy, variant.labelled = value, digits
    for runtime in report.runtimes.values():
        members = [v for v in report.variants.values() if v.runtime == runtime.runtime]
        labelled = sum(v.labelled for v in members if v.accuracy is not None)
        if labelled:
            correct = sum((v.accuracy or 0) * v.labelled for v in members if v.accuracy is not None)
            runtime.accuracy, runtime.labelled = correct / labelled, labelled
    report.notes.append(f"accuracy from the load test report {path}")
