"""Accuracy per variant, counted over every user class of one Locust process.

Workers hand their counts to the master with each stats report (``take``/``merge``), so the
master's book holds the whole run. No Locust here: the runner reads the files this writes.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Tally:
    digits: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.digits if self.digits else 0.0


class AccuracyBook:
    def __init__(self) -> None:
        self._tallies: dict[str, Tally] = {}

    def record(self, variant: str, digits: int, correct: int) -> None:
        tally = self._tallies.setdefault(variant, Tally())
        tally.digits += digits
        tally.correct += correct

    def tallies(self) -> dict[str, Tally]:
        return dict(sorted(self._tallies.items()))

    def reset(self) -> None:
        self._tallies.clear()

    def take(self) -> dict[str, list[int]]:
        """The counts since the last ``take`` (for the master), and forget them."""
        taken = {variant: [t.digits, t.correct] for variant, t in self._tallies.items()}
        self._tallies.clear()
        return taken

    def merge(self, taken: dict[str, list[int]]) -> None:
        for variant, (digits, correct) in taken.items():
            self.record(variant, digits, correct)

    def to_json(self) -> dict[str, Any]:
        return {
            "variants": {
                name: {"digits": t.digits, "correct": t.correct, "accuracy": round(t.accuracy, 4)}
                for name, t in self.tallies().items()
            }
        }

    def table(self) -> str:
        lines = [f"{'variant':<12} {'digits':>8} {'correct':>8} {'accuracy':>8}"]
        for variant, t in self.tallies().items():
            lines.append(f"{variant:<12} {t.digits:>8} {t.correct:>8} {t.accuracy:>8.3f}")
        return "\n".join(lines)

    def write(self, prefix: str) -> list[Path]:
        """``{prefix}_accuracy.json`` and ``{prefix}_accuracy.csv``, next to Locust's CSVs."""
        json_path, csv_path = Path(f"{prefix}_accuracy.json"), Path(f"{prefix}_accuracy.csv")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        with csv_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["variant", "digits", "correct", "accuracy"])
            for variant, t in self.tallies().items():
                writer.writerow([variant, t.digits, t.correct, f"{t.accuracy:.4f}"])
        return [json_path, csv_path]


def read_accuracy(path: Path) -> dict[str, Tally]:
    """The tallies in an ``_accuracy.json`` written by ``AccuracyBook.write``."""
    variants = json.loads(path.read_text())["variants"]
    return {name: Tally(int(v["digits"]), int(v["correct"])) for name, v in variants.items()}


BOOK = AccuracyBook()
