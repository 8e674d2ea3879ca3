"""Comparing two answers to the same request, output tensor by output tensor (pure functions).

An element agrees when ``|shadow - primary| <= atol + rtol * |primary| + noise``, numpy's
``isclose`` widened by ``noise``: the difference, on that element of that request, between the
primary and a variant that should agree with it (the same version on another runtime). The top-k
classes (the last axis of a floating output) must be the same set in every row, unless the
noise reference's differ from the primary's in that row too (a near-tie, not a divergence).
A difference that a variant of the primary's own version shows as well is noise, Diffy's rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.inference import Tensor

Array = np.ndarray[Any, Any]
TINY = 1e-30
"""Denominator of a relative difference where the primary's element is 0."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    atol: float = 1e-5
    rtol: float = 1e-5
    top_k: int = 1
    values: bool = True
    """False: floating outputs are judged on their top-k classes only (their differences are
    still measured); integers, booleans and bytes must be equal either way."""


@dataclass(frozen=True, slots=True)
class NoiseFloor:
    """What a variant that should agree with the primary differed by, on one request: per output
    (in the primary's order) the element-wise absolute difference and the rows whose top-k
    differed; None where that output could not be compared."""

    abs_diff: tuple[Array | None, ...]
    top_k_differs: tuple[Array | None, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    agree: bool
    reason: str
    """Empty when they agree; else what differed first (``outputs``, ``shape``, ``dtype``,
    ``values``, ``top-k``) and where."""
    max_abs_diff: float | None
    """Largest absolute difference over every numeric output; None when none compared."""
    mean_abs_diff: float | None = None
    max_rel_diff: float | None = None


def is_floating(tensor: Tensor) -> bool:
    return bool(tensor.data.dtype.kind == "f")


def pairs(primary: Sequence[Tensor], shadow: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]] | str:
    """Output pairs by name; by position when the names differ but the counts do not (runtimes
    name outputs their own way); else a reason."""
    by_name = {tensor.name: tensor for tensor in shadow}
    if len(by_name) == len(primary) and all(t.name in by_name for t in primary):
        return [(t, by_name[t.name]) for t in primary]
    if len(primary) == len(shadow):
        return list(zip(primary, shadow, strict=True))
    mine = ", ".join(t.name for t in primary)
    theirs = ", ".join(t.name for t in shadow)
    return f"outputs: primary has [{mine}], shadow [{theirs}]"


def abs_diff(primary: Array, shadow: Array) -> Array:
    """Element-wise |shadow - primary| in float64; NaN where both are NaN counts as 0, NaN on one
    side as infinity."""
    a, b = primary.astype(np.float64, copy=False), shadow.astype(np.float64, copy=False)
    diff: Array = np.abs(b - a)
    if primary.dtype.kind == "f" and np.isnan(diff.max(initial=0.0)):
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        diff = np.where(nan_a & nan_b, 0.0, np.where(nan_a | nan_b, np.inf, diff))
    return diff


def top_k_sets(data: Array, k: int) -> Array | None:
    """The indices of the k largest values along the last axis, sorted, one row per leading
    index (k == 1: the argmax); None when the last axis cannot rank (k == 0, or at most k
    classes)."""
    if k <= 0 or data.ndim == 0 or data.shape[-1] <= k:
        return None
    rows = data.reshape(-1, data.shape[-1])
    if np.isnan(rows.max(initial=0.0)):
        rows = np.where(np.isnan(rows), -np.inf, rows)
    if k == 1:
        top: Array = rows.argmax(axis=1)[:, None]
        return top
    top = np.argpartition(-rows, k - 1, axis=1)[:, :k]
    return np.sort(top, axis=1)


def top_k_differs(primary: Array, shadow: Array, k: int) -> Array | None:
    """Per row, whether the top-k sets differ; None when not ranked."""
    mine, theirs = top_k_sets(primary, k), top_k_sets(shadow, k)
    if mine is None or theirs is None:
        return None
    differs: Array = (mine != theirs).any(axis=1)
    return differs


def noise_floor(primary: Sequence[Tensor], reference: Sequence[Tensor], k: int) -> NoiseFloor:
    matched = pairs(primary, reference)
    diffs: list[Array | None] = [None] * len(primary)
    ranks: list[Array | None] = [None] * len(primary)
    if not isinstance(matched, str):
        for index, (p, r) in enumerate(matched):
            if p.data.shape == r.data.shape and is_floating(p) and is_floating(r):
                diffs[index] = abs_diff(p.data, r.data)
                ranks[index] = top_k_differs(p.data, r.data, k)
    return NoiseFloor(tuple(diffs), tuple(ranks))


def combine(floors: Sequence[NoiseFloor]) -> NoiseFloor | None:
    """Several noise references: the largest difference any of them showed."""
    if not floors:
        return None
    diffs, ranks = list(floors[0].abs_diff), list(floors[0].top_k_differs)
    for floor in floors[1:]:
        for index, (diff, rank) in enumerate(zip(floor.abs_diff, floor.top_k_differs, strict=True)):
            current, current_rank = diffs[index], ranks[index]
            diffs[index] = diff if current is None or diff is None else np.maximum(current, diff)
            if rank is not None and current_rank is not None:
                ranks[index] = current_rank | rank
            elif current_rank is None:
                ranks[index] = rank
    return NoiseFloor(tuple(diffs), tuple(ranks))


def compare(
    primary: Sequence[Tensor],
    shadow: Sequence[Tensor],
    tolerance: Tolerance,
    noise: NoiseFloor | None = None,
) -> Comparison:
    matched = pairs(primary, shadow)
    if isinstance(matched, str):
        return Comparison(False, matched, None)
    reason = ""
    max_abs: float | None = None
    abs_total = 0.0
    elements = 0
    max_rel = 0.0
    for index, (p, s) in enumerate(matched):
        if p.data.shape != s.data.shape:
            reason = reason or f"shape of {p.name}: {list(p.data.shape)} vs {list(s.data.shape)}"
            continue
        if p.datatype != s.datatype:
            reason = reason or f"dtype of {p.name}: {p.datatype} vs {s.datatype}"
            continue
        if p.data.dtype.kind not in "biuf":
            if not np.array_equal(p.data, s.data):
                reason = reason or f"values of {p.name}: not equal"
            continue
        if p.data.size == 0:
            continue
        diff = abs_diff(p.data, s.data)
        magnitude = np.abs(p.data.astype(np.float64, copy=False))
        if is_floating(p):
            magnitude = np.fmax(magnitude, 0.0)  # NaN -> 0: only atol applies there
        allowed = tolerance.atol + tolerance.rtol * magnitude
        floor = noise.abs_diff[index] if noise is not None else None
        if floor is not None and floor.shape == diff.shape:
            allowed += floor
        largest = float(diff.max())
        max_abs = largest if max_abs is None else max(max_abs, largest)
        abs_total += float(diff.sum())
        elements += diff.size
        max_rel = max(max_rel, float((diff / np.maximum(magnitude, TINY)).max()))
        beyond = int(np.count_nonzero(diff > allowed))
        if is_floating(p) and not tolerance.values:
            beyond = 0
        if beyond and not reason:
            reason = (
                f"values of {p.name}: {beyond} of {diff.size} beyond tolerance, "
                f"max abs diff {largest:.3g}"
            )
        if is_floating(p):
            differs = top_k_differs(p.data, s.data, tolerance.top_k)
            noisy = noise.top_k_differs[index] if noise is not None else None
            if differs is not None and noisy is not None and noisy.shape == differs.shape:
                differs = differs & ~noisy
            if differs is not None and differs.any() and not reason.startswith(("shape", "dtype")):
                rows = int(np.count_nonzero(differs))
                top = f"top-{tolerance.top_k} of {p.name}: {rows} of {differs.size} rows differ"
                reason = top if not reason else f"{reason}; {top}"
    return Comparison(
        agree=not reason,
        reason=reason,
        max_abs_diff=max_abs,
        mean_abs_diff=abs_total / elements if elements else None,
        max_rel_diff=max_rel if elements else None,
    )


def top_classes(outputs: Sequence[Tensor], k: int, rows: int = 8) -> list[list[int]]:
    """The top classes of the first floating output, best first, for the first ``rows`` rows."""
    for tensor in outputs:
        if is_floating(tensor) and tensor.data.ndim >= 1 and tensor.data.shape[-1] > 0:
            data = tensor.data.reshape(-1, tensor.data.shape[-1])[:rows].astype(np.float64)
            order = np.argsort(-np.where(np.isnan(data), -np.inf, data), axis=1, kind="stable")
            return [[int(c) for c in row[: max(k, 1)]] for row in order]
    return []
