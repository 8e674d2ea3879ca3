"""What every variant should look like at each point of a rollout (pure).

Candidates are paired with the baseline variants on the same backend (``tf-v3`` with ``tf-v1``):
at a canary weight each candidate takes that share of its counterparts' traffic, and at the
promotion it takes their weight and labels, so the split between runtimes stays what it was.
Without a pairing (candidates on other backends) the candidates share equally and each takes
an equal part of the baseline's weight and every baseline label.

During the rollout every weight is multiplied by ``scale`` (uniform scaling changes no share and
no sticky user's variant), so that 5% of a baseline weighted 1 is still exact; the end of the
rollout puts the original numbers back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gateway.rollout.state import Rollout, Target, VariantState

RESOLUTION = 1000
"""Weights are scaled until the traffic at stake is at least this many units."""


def scale_for(original: Mapping[str, VariantState]) -> int:
    total = sum(v.weight for v in original.values() if v.enabled)
    return max(1, math.ceil(RESOLUTION / total)) if total > 0 else 1


def counterparts(rollout: Rollout) -> tuple[dict[str, tuple[str, ...]], bool]:
    """Candidate -> the baseline variants it replaces, and whether that is a pairing by backend
    (every candidate has a counterpart, every baseline variant a candidate)."""
    backend = {name: variant.backend for name, variant in rollout.original.items()}
    by_backend = {
        c: tuple(b for b in rollout.baseline if backend[b] == backend[c])
        for c in rollout.candidates
    }
    covered = {b for replaced in by_backend.values() for b in replaced}
    if all(by_backend.values()) and covered == set(rollout.baseline):
        return by_backend, True
    return {c: rollout.baseline for c in rollout.candidates}, False


def _baseline_weight(rollout: Rollout, names: Sequence[str]) -> int:
    return sum(rollout.original[name].weight for name in names)


def _shares(rollout: Rollout) -> dict[str, float]:
    """Each candidate's part of the candidates' traffic."""
    pairs, paired = counterparts(rollout)
    total = _baseline_weight(rollout, rollout.baseline)
    if paired and total > 0:
        return {c: _baseline_weight(rollout, pairs[c]) / total for c in rollout.candidates}
    return {c: 1 / len(rollout.candidates) for c in rollout.candidates}


def _as_was(variant: VariantState, scale: int = 1) -> Target:
    return Target(weight=variant.weight * scale, enabled=variant.enabled, labels=variant.labels)


def _others(rollout: Rollout, scale: int) -> dict[str, Target]:
    mine = set(rollout.candidates) | set(rollout.baseline)
    return {n: _as_was(v, scale) for n, v in rollout.original.items() if n not in mine}


def at_weight(rollout: Rollout, percent: float) -> dict[str, Target]:
    """The candidates at ``percent`` of the traffic of baseline + candidates (0: shadow only)."""
    scale = rollout.scale
    at_stake = sum(rollout.original[b].weight for b in rollout.baseline) * scale
    targets = _others(rollout, scale)
    for name in rollout.baseline:
        variant = rollout.original[name]
        weight = round(variant.weight * scale * (100 - percent) / 100)
        targets[name] = Target(weight=weight, enabled=True, labels=variant.labels)
    for name, share in _shares(rollout).items():
        weight = round(at_stake * percent / 100 * share)
        targets[name] = Target(weight=weight, enabled=True, labels=rollout.original[name].labels)
    return targets


def promoted(rollout: Rollout) -> dict[str, Target]:
    """Candidates with their counterparts' weight and labels; the old variants disabled."""
    targets = _others(rollout, 1)
    pairs, paired = counterparts(rollout)
    for name in rollout.candidates:
        weight = _baseline_weight(rollout, pairs[name])
        if not paired:
            weight = max(1, round(weight / len(rollout.candidates)))
        labels = _union([rollout.original[b].labels for b in pairs[name]])
        targets[name] = Target(weight=weight, enabled=True, labels=labels)
    for name in rollout.baseline:
        targets[name] = Target(weight=0, enabled=False, labels=rollout.original[name].labels)
    return targets


def rolled_back(rollout: Rollout) -> dict[str, Target]:
    """The candidates disabled (weight 0), everything else as it was."""
    targets = {name: _as_was(variant) for name, variant in rollout.original.items()}
    for name in rollout.candidates:
        targets[name] = Target(weight=0, enabled=False, labels=rollout.original[name].labels)
    return targets


def _union(groups: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for labels in groups:
        seen.update(dict.fromkeys(labels))
    return tuple(seen)
