"""The paper's claims as verdicts from a stated confidence-interval rule.

Rule: a comparison "A beats B" uses the per-seed paired differences d_s = m_A(s) − m_B(s) and their 95% CI,
mean ± t_{0.975, n−1}·sd/√n. With a single seed the CI comes from the evaluation noise of that seed instead
(the paired per-prompt differences, normal approximation) and the verdict says so.

* reproduced      — the CI lies entirely on the side the paper claims;
* not reproduced  — the CI lies entirely on the other side;
* inconclusive    — the CI contains 0.

Equivalence claims ("off-policy ≈ on-policy") are reproduced when the CI lies inside ±margin, not reproduced when
it excludes 0, and inconclusive otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


@dataclass
class Interval:
    mean: float
    low: float
    high: float
    n: int
    source: str  # "seeds" | "eval noise (1 seed)"

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}] (n={self.n}, {self.source})"


def ci(values, level: float = 0.95, source: str = "seeds") -> Interval:
    """Mean and t-interval of ``values`` (needs ≥ 2 values; one value gives an infinitely wide interval)."""
    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return Interval(m, -math.inf, math.inf, len(v), source)
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return Interval(m, m - half, m + half, len(v), source)


def paired_difference(a_by_seed: dict, b_by_seed: dict, a_samples=None, b_samples=None) -> Interval:
    """CI of A − B: across seeds when there are ≥ 2 common seeds, else from per-sample paired differences."""
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    if len(seeds) >= 2 or a_samples is None:
        return ci([a_by_seed[s] - b_by_seed[s] for s in seeds])
    d = np.asarray(a_samples, dtype=float) - np.asarray(b_samples, dtype=float)
    m, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    return Interval(m, m - 1.96 * se, m + 1.96 * se, 1, "eval noise (1 seed)")


def better(interval: Interval) -> str:
    """Verdict of a claim that the difference is positive."""
    if interval.low > 0:
        return REPRODUCED
    if interval.high < 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def equivalent(interval: Interval, margin: float) -> str:
    if -margin <= interval.low and interval.high <= margin:
        return REPRODUCED
    if interval.low > 0 or interval.high < 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def beats_all(intervals: dict[str, Interval]) -> str:
    """'A beats every baseline': reproduced if every difference is significantly positive, not reproduced if any
    baseline is significantly better, else inconclusive."""
    verdicts = [better(i) for i in intervals.values()]
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if any(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def not_a_stable_gain(per_policy: dict[str, Interval]) -> str:
    """'DPO β=0.01 is not a stable gain over DPO': reproduced if on at least one initial policy the gain is not
    significant (CI reaches 0 or below); not reproduced if the gain is significant on every policy."""
    return NOT_REPRODUCED if all(better(i) == REPRODUCED for i in per_policy.values()) else REPRODUCED


def pareto_balance(adaptive_quality: dict, adaptive_kl: float, constants: dict[float, tuple[dict, float]]) -> str:
    """'Adaptive α_t balances quality against KL': not reproduced if some constant β0/β run is significantly
    better in quality *and* has a KL at most adaptive's (it dominates); reproduced if it is not dominated and is
    significantly better in quality than every constant run with a KL at most its own — or, when every constant
    run has a larger KL, than at least one of them; inconclusive otherwise."""
    intervals = {r: paired_difference(adaptive_quality, q) for r, (q, _) in constants.items()}
    return pareto_from_intervals(intervals, adaptive_kl, {r: kl for r, (_, kl) in constants.items()})


def pareto_from_intervals(intervals: dict, adaptive_kl: float, kls: dict) -> str:
    """``pareto_balance`` given the quality differences (adaptive − constant) as intervals."""
    verdicts = {r: (better(i), kls[r] <= adaptive_kl) for r, i in intervals.items()}
    if any(v == NOT_REPRODUCED and low_kl for v, low_kl in verdicts.values()):
        return NOT_REPRODUCED
    comparable = [v for v, low_kl in verdicts.values() if low_kl]
    if comparable:
        return REPRODUCED if all(v == REPRODUCED for v in comparable) else INCONCLUSIVE
    return REPRODUCED if any(v == REPRODUCED for v, _ in verdicts.values()) else INCONCLUSIVE


def steps_to_reach(curve: list[float], target: float, window: int = 5) -> int | None:
    """First step at which the moving average (over ``window`` steps) reaches ``target``; None if never."""
    c = np.asarray(curve, dtype=float)
    if len(c) == 0:
        return None
    ma = np.convolve(c, np.ones(window) / window, mode="valid") if len(c) >= window else c
    hit = np.nonzero(ma >= target)[0]
    return int(hit[0]) + (window - 1 if len(c) >= window else 0) if len(hit) else None


def format_speedups(speedups: list[float]) -> str:
    """Per-seed speed-ups as ``1.22×, 0.95×`` (∞ when the slower run never reached the target)."""
    return ", ".join("∞" if x == float("inf") else f"{x:.2f}×" for x in speedups)


def speedup_verdict(speedups: list[float], claimed: float = 2.0) -> str:
    """'Converges more than ``claimed``× faster' from per-seed speedups (∞ when the slower never gets there)."""
    s = np.asarray([x for x in speedups if x is not None], dtype=float)
    if len(s) == 0:
        return INCONCLUSIVE
    if np.all(np.isinf(s)):
        return REPRODUCED
    finite = np.log(np.clip(s[np.isfinite(s)], 1e-6, None))
    if len(s) == 1 or len(finite) < 2:
        return REPRODUCED if s.min() > claimed else (NOT_REPRODUCED if s.max() < claimed else INCONCLUSIVE)
    i = ci(np.log(np.clip(s, 1e-6, 1e6)))
    return better(Interval(i.mean - math.log(claimed), i.low - math.log(claimed), i.high - math.log(claimed), i.n,
                           i.source))
