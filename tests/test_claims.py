"""Claim verdict rules: each rule gives each of its verdicts on hand-made numbers."""
import math

import pytest

from reproduce import claims as C


def test_ci_matches_t_interval_by_hand():
    i = C.ci([1.0, 2.0, 3.0])
    # mean 2, sd 1, se 1/√3, t_{0.975,2} = 4.302652729911275
    assert i.mean == 2.0
    assert i.high - i.mean == pytest.approx(4.302652729911275 / math.sqrt(3))
    assert C.ci([5.0]).low == -math.inf


def test_better_gives_all_three_verdicts():
    assert C.better(C.ci([1.0, 1.2, 0.9])) == C.REPRODUCED
    assert C.better(C.ci([-1.0, -1.2, -0.9])) == C.NOT_REPRODUCED
    assert C.better(C.ci([1.0, -1.2, 0.1])) == C.INCONCLUSIVE


def test_paired_difference_uses_seeds_then_eval_noise():
    by_seeds = C.paired_difference({0: 2.0, 1: 3.0, 2: 2.5}, {0: 1.0, 1: 1.5, 2: 1.4})
    assert by_seeds.source == "seeds" and by_seeds.n == 3
    one = C.paired_difference({0: 2.0}, {0: 1.0}, a_samples=[2, 3, 1, 2], b_samples=[1, 1, 1, 1])
    assert one.source.startswith("eval noise") and one.mean == pytest.approx(1.0)
    assert C.better(one) == C.REPRODUCED


def test_equivalence_margin():
    assert C.equivalent(C.ci([0.01, -0.02, 0.0, 0.02]), margin=0.25) == C.REPRODUCED
    assert C.equivalent(C.ci([1.0, 1.1, 0.9]), margin=0.25) == C.NOT_REPRODUCED
    assert C.equivalent(C.ci([0.5, -0.4, 0.3]), margin=0.25) == C.INCONCLUSIVE


def test_beats_all_and_stable_gain():
    good, bad, unsure = C.ci([1, 1.1, 0.9]), C.ci([-1, -1.1, -0.9]), C.ci([1, -1, 0.2])
    assert C.beats_all({"a": good, "b": good}) == C.REPRODUCED
    assert C.beats_all({"a": good, "b": unsure}) == C.INCONCLUSIVE
    assert C.beats_all({"a": good, "b": bad}) == C.NOT_REPRODUCED
    assert C.not_a_stable_gain({"weak": good, "strong": unsure}) == C.REPRODUCED
    assert C.not_a_stable_gain({"weak": good, "strong": good}) == C.NOT_REPRODUCED


def test_pareto_balance():
    adaptive = {0: 2.0, 1: 2.1, 2: 1.9}
    worse = {0: 1.0, 1: 1.1, 2: 0.9}
    better_q = {0: 3.0, 1: 3.1, 2: 2.9}
    assert C.pareto_balance(adaptive, 5.0, {1.0: (worse, 4.0)}) == C.REPRODUCED
    assert C.pareto_balance(adaptive, 5.0, {1.0: (better_q, 4.0)}) == C.NOT_REPRODUCED
    # a constant run with higher quality but a larger KL does not dominate
    assert C.pareto_balance(adaptive, 5.0, {2.0: (better_q, 9.0)}) == C.INCONCLUSIVE
    # every constant run has a larger KL and a lower quality: adaptive dominates them
    assert C.pareto_balance(adaptive, 1.0, {1.0: (worse, 3.0), 2.0: (worse, 5.0)}) == C.REPRODUCED


def test_steps_to_reach_and_speedup():
    assert C.steps_to_reach([0, 0, 0, 1, 1, 1, 1, 1], 1.0, window=3) == 5
    assert C.steps_to_reach([0, 0, 0], 1.0, window=2) is None
    assert C.speedup_verdict([3.0, 2.8, 3.5]) == C.REPRODUCED
    assert C.speedup_verdict([1.0, 1.1, 0.9]) == C.NOT_REPRODUCED
    assert C.speedup_verdict([float("inf")]) == C.REPRODUCED
    assert C.format_speedups([1.2156862745098038, float("inf")]) == "1.22×, ∞"
