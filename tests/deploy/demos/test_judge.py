"""The demo's judge on real reference outputs: the model's mistakes are counted, never failed;
an answer that is not the served version's own output is a failure."""

from __future__ import annotations

import numpy as np

from deploy.local.demos.judge import judge
from deploy.local.demos.load import References
from model_store.digits import load_test_set

DIGITS = load_test_set()
REFERENCE = References()


def test_the_served_versions_own_output_passes_and_its_mistakes_are_only_counted():
    v4 = REFERENCE("4")
    wrong = np.flatnonzero(v4.argmax(axis=1) != DIGITS.labels)[:3]  # v4 misreads these
    right = np.flatnonzero(v4.argmax(axis=1) == DIGITS.labels)[:2]
    picks = np.concatenate([wrong, right])
    verdict = judge(v4[picks], picks, DIGITS.labels[picks], "tf-v4", "4", REFERENCE)
    assert verdict.ok
    assert (verdict.version, verdict.correct) == ("4", 2)


def test_another_versions_output_is_a_failure():
    picks = np.arange(20)
    v4_answers = REFERENCE("4")[picks]
    verdict = judge(v4_answers, picks, DIGITS.labels[picks], "tf-v3", "3", REFERENCE)
    assert not verdict.ok
    assert verdict.problem is not None
    assert verdict.problem.startswith("variant tf-v3: answer differs from version 3's own output")
    nudged = REFERENCE("3")[picks] + np.float32(5e-4)  # beyond a float tolerance
    assert not judge(nudged, picks, DIGITS.labels[picks], "tf-v3", "3", REFERENCE).ok
    close = REFERENCE("3")[picks] + np.float32(1e-6)
    assert judge(close, picks, DIGITS.labels[picks], "tf-v3", "3", REFERENCE).ok


def test_answers_that_cannot_be_judged_are_failures():
    picks = np.arange(2)
    answers = REFERENCE("1")[picks]
    labels = DIGITS.labels[picks]
    assert judge(answers, picks, labels, None, "1", REFERENCE).problem == (
        "the answer names no variant (x-gateway-variant)"
    )
    assert judge(answers, picks, labels, "x", None, REFERENCE).problem == (
        "variant x: no version known for it"
    )
    assert judge(answers, picks, labels, "x", "9", REFERENCE).problem == (
        "variant x: no reference outputs for version 9"
    )
    assert judge(answers[:1], picks, labels, "x", "1", REFERENCE).problem == (
        "variant x: probabilities of shape [1, 10] for 2 digits"
    )
