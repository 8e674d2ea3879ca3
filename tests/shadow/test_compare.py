"""Output comparison: tolerances, top-k, mismatches, and the noise floor of a second variant."""

import numpy as np
import pytest

from gateway.inference import Tensor
from gateway.shadow.compare import Tolerance, combine, compare, noise_floor, top_classes

PROBS = np.array([[0.05, 0.7, 0.25], [0.6, 0.3, 0.1]], dtype=np.float32)


def fp32(data, name="probabilities"):
    return [Tensor(name, "FP32", np.ascontiguousarray(data, dtype=np.float32))]


def test_equal_outputs_agree_with_zero_difference():
    result = compare(fp32(PROBS), fp32(PROBS.copy()), Tolerance())
    assert result.agree
    assert result.reason == ""
    assert result.max_abs_diff == 0.0
    assert result.mean_abs_diff == 0.0


def test_a_difference_within_atol_plus_rtol_agrees_and_one_beyond_diverges():
    within = PROBS + np.float32(1e-5)  # atol 1e-5 + rtol 1e-5 * |p| leaves room for float error
    assert compare(fp32(PROBS), fp32(within), Tolerance()).agree
    beyond = PROBS.copy()
    beyond[0, 0] += 1e-3
    result = compare(fp32(PROBS), fp32(beyond), Tolerance())
    assert not result.agree
    assert result.reason.startswith("values of probabilities: 1 of 6 beyond tolerance")
    assert result.max_abs_diff == pytest.approx(1e-3, abs=1e-6)
    assert compare(fp32(PROBS), fp32(beyond), Tolerance(atol=2e-3)).agree


def test_a_changed_argmax_is_a_top_k_divergence_even_within_a_loose_tolerance():
    swapped = PROBS[:, [1, 0, 2]]  # row 0: argmax 1 -> 0; row 1: argmax 0 -> 1
    result = compare(fp32(PROBS), fp32(swapped), Tolerance(atol=1.0, top_k=1))
    assert not result.agree
    assert result.reason == "top-1 of probabilities: 2 of 2 rows differ"
    assert compare(fp32(PROBS), fp32(swapped), Tolerance(atol=1.0, top_k=0)).agree
    # top-2 as a set: row 1's {0, 1} survives the swap, row 0's {1, 2} does not
    top2 = compare(fp32(PROBS), fp32(swapped), Tolerance(atol=1.0, top_k=2))
    assert top2.reason == "top-2 of probabilities: 1 of 2 rows differ"


def test_shape_dtype_and_output_mismatches_diverge_with_the_reason():
    assert compare(fp32(PROBS), fp32(PROBS[:1]), Tolerance()).reason == (
        "shape of probabilities: [2, 3] vs [1, 3]"
    )
    as_fp64 = [Tensor("probabilities", "FP64", PROBS.astype(np.float64))]
    assert compare(fp32(PROBS), as_fp64, Tolerance()).reason == (
        "dtype of probabilities: FP32 vs FP64"
    )
    two = fp32(PROBS) + fp32(PROBS, "logits")
    assert compare(fp32(PROBS), two, Tolerance()).reason == (
        "outputs: primary has [probabilities], shadow [probabilities, logits]"
    )


def test_outputs_named_differently_pair_by_position():
    assert compare(fp32(PROBS), fp32(PROBS, "output_0"), Tolerance()).agree


def test_integers_must_be_equal_and_nan_equals_nan():
    classes = [Tensor("class", "INT64", np.array([1, 0], dtype=np.int64))]
    other = [Tensor("class", "INT64", np.array([1, 2], dtype=np.int64))]
    assert compare(classes, classes, Tolerance()).agree
    assert (
        compare(classes, other, Tolerance()).reason
        == "values of class: 1 of 2 beyond tolerance, max abs diff 2"
    )
    with_nan = PROBS.copy()
    with_nan[0, 2] = np.nan
    assert compare(fp32(with_nan), fp32(with_nan.copy()), Tolerance()).agree
    result = compare(fp32(with_nan), fp32(PROBS), Tolerance())
    assert not result.agree
    assert result.max_abs_diff == float("inf")


def test_bytes_outputs_compare_exactly():
    words = [Tensor("label", "BYTES", np.array([b"cat", b"dog"], dtype=object))]
    other = [Tensor("label", "BYTES", np.array([b"cat", b"cow"], dtype=object))]
    assert compare(words, words, Tolerance()).agree
    assert compare(words, other, Tolerance()).reason == "values of label: not equal"


def test_the_noise_floor_forgives_what_the_reference_also_differs_by():
    """Diffy's rule per element: a runtime that is as far from the primary as the candidate
    makes that element noise; an element where only the candidate moved stays a divergence."""
    reference = PROBS.copy()
    reference[0, 0] += 2e-3  # the other runtime differs here on this request
    candidate = PROBS.copy()
    candidate[0, 0] += 1.5e-3
    floor = noise_floor(fp32(PROBS), fp32(reference), k=1)
    assert not compare(fp32(PROBS), fp32(candidate), Tolerance()).agree
    assert compare(fp32(PROBS), fp32(candidate), Tolerance(), floor).agree
    candidate[1, 2] += 1e-3  # where the reference agrees exactly
    assert not compare(fp32(PROBS), fp32(candidate), Tolerance(), floor).agree


def test_a_near_tie_the_reference_also_flips_is_not_a_top_k_divergence():
    tie = np.array([[0.5, 0.5000001, 0.0], [0.9, 0.05, 0.05]], dtype=np.float32)
    flipped = np.array([[0.5000001, 0.5, 0.0], [0.9, 0.05, 0.05]], dtype=np.float32)
    loose = Tolerance(atol=1e-3)
    assert not compare(fp32(tie), fp32(flipped), loose).agree
    floor = noise_floor(fp32(tie), fp32(flipped), k=1)
    assert compare(fp32(tie), fp32(flipped), loose, floor).agree
    wrong_row = flipped.copy()
    wrong_row[1] = [0.05, 0.9, 0.05]
    assert compare(fp32(tie), fp32(wrong_row), Tolerance(atol=1.0), floor).reason == (
        "top-1 of probabilities: 1 of 2 rows differ"
    )


def test_several_references_combine_to_the_largest_noise():
    a, b = PROBS.copy(), PROBS.copy()
    a[0, 0] += 1e-3
    b[1, 1] += 1e-3
    floor = combine([noise_floor(fp32(PROBS), fp32(x), 1) for x in (a, b)])
    candidate = PROBS.copy()
    candidate[0, 0] += 1e-3
    candidate[1, 1] += 1e-3
    assert compare(fp32(PROBS), fp32(candidate), Tolerance(), floor).agree


def test_top_classes_best_first():
    assert top_classes(fp32(PROBS), 2) == [[1, 2], [0, 1]]
    assert top_classes([Tensor("c", "INT64", np.array([1]))], 1) == []


def test_without_values_a_floating_output_is_judged_on_its_classes_and_integers_stay_exact():
    other_numbers = PROBS * np.float32(0.9)  # the same classes, other probabilities
    classes_only = Tolerance(values=False)
    result = compare(fp32(PROBS), fp32(other_numbers), classes_only)
    assert result.agree
    assert result.max_abs_diff == pytest.approx(0.07, abs=1e-6)  # still measured
    assert not compare(fp32(PROBS), fp32(PROBS[:, [1, 0, 2]]), classes_only).agree
    labels = [Tensor("class", "INT64", np.array([1, 0], dtype=np.int64))]
    other = [Tensor("class", "INT64", np.array([1, 2], dtype=np.int64))]
    assert not compare(labels, other, classes_only).agree
