"""Paired gains over the baseline, honestly: the corrected resampled t interval of each combo's gain across the
splits (folds x repeats), Holm's adjustment over all the combos compared, and each method's marginal effect.

Cross-validation splits share most of their training data, so their scores are not independent and the plain
t interval is too narrow; Nadeau and Bengio's correction (as in Bouckaert and Frank's corrected repeated k-fold
test) widens the variance of the mean by 1/n + n_test/n_train."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
HELPS, HURTS, UNCLEAR = "helps", "hurts", "no evidence"


@dataclass(frozen=True)
class Gain:
    """A paired difference over the splits: its mean, its 95% interval and two-sided p-value (corrected)."""

    mean: float
    low: float
    high: float
    p_value: float
    splits: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": _r(self.mean), "ci_low": _r(self.low), "ci_high": _r(self.high),
                "p_value": _r(self.p_value), "splits": self.splits}  # fmt: skip


def _r(x: float) -> float:
    return round(float(x), 6)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n == 1:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def paired_gain(diffs: Sequence[float], test_over_train: float) -> Gain:
    """The gain whose per-split differences are `diffs`; `test_over_train` is n_test/n_train of a split."""
    from scipy import stats

    n = len(diffs)
    mean, sd = mean_std(diffs)
    if n < 2:
        return Gain(mean, -math.inf, math.inf, 1.0, n)
    if sd == 0.0:  # every split moved by exactly the same amount (often: not at all)
        return Gain(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, n)
    se = sd * math.sqrt(1.0 / n + test_over_train)
    t = mean / se
    crit = float(stats.t.ppf(1 - ALPHA / 2, n - 1))
    p = float(2 * stats.t.sf(abs(t), n - 1))
    return Gain(mean, mean - crit * se, mean + crit * se, p, n)


def bootstrap_gain(diffs: Sequence[float]) -> Gain:
    """The gain on one test set (`--test-split`): `diffs[0]` is the difference on the whole set, the others on its
    paired bootstrap resamples of the test originals: the 95% percentile interval and the two-sided bootstrap
    p-value (the share of resamples on the far side of 0, doubled, counting the observed one)."""
    import numpy as np

    point, resampled = diffs[0], np.asarray(diffs[1:], dtype=float)
    if len(resampled) == 0:
        return Gain(point, -math.inf, math.inf, 1.0, 0)
    low, high = np.percentile(resampled, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    side = min(np.count_nonzero(resampled <= 0), np.count_nonzero(resampled >= 0))
    p = min(1.0, 2 * (side + 1) / (len(resampled) + 1))
    return Gain(point, float(low), float(high), p, len(resampled))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(gain: Gain, p_adjusted: float) -> str:
    """`helps` or `hurts` only when the adjusted test rejects no effect (and so the interval excludes 0)."""
    if p_adjusted < ALPHA and gain.low > 0:
        return HELPS
    if p_adjusted < ALPHA and gain.high < 0:
        return HURTS
    return UNCLEAR


# --- what a design can see ---------------------------------------------------------------------------------------

POWER = 0.8
TARGET_GAIN = 0.02  # the gain a design should see: published augmentation gains are 0.5-3 points of macro-F1


def min_detectable_gain(spread: float, splits: int, test_over_train: float, comparisons: int) -> float:
    """The smallest true mean gain the corrected test calls with `POWER` power at Holm's first step over
    `comparisons` combos (alpha / m, two-sided: the most lenient level any combo meets), when the per-split
    differences spread by `spread`. The statistic under a true gain d is taken as a noncentral t with n - 1 degrees
    of freedom and noncentrality d / (spread * sqrt(1/n + n_test/n_train)): the corrected test's own model."""
    from scipy import optimize, stats

    if splits < 2 or not math.isfinite(spread):
        return math.inf
    df = splits - 1
    crit = float(stats.t.isf(ALPHA / (2 * max(1, comparisons)), df))

    def short(nc: float) -> float:
        # scipy's noncentral t gives NaN for a tail it cannot resolve: the wrong-side tail is then ~0, and the
        # right side ~1 past the critical value (~0 before it).
        upper, lower = float(stats.nct.sf(crit, df, nc)), float(stats.nct.cdf(-crit, df, nc))
        upper = (1.0 if nc > crit else 0.0) if math.isnan(upper) else upper
        return upper + (0.0 if math.isnan(lower) else lower) - POWER

    high = crit + 1.0
    while short(high) < 0:
        high *= 2
    nc = optimize.brentq(short, 0.0, high, xtol=1e-10)
    return nc * spread * math.sqrt(1.0 / splits + test_over_train)


def design_to_reach(
    spread: float, folds: int, test_over_train: float, comparisons: int, confirm_top: int, confirming: bool = False
) -> str:
    """One line naming the smallest design that would see `TARGET_GAIN` (more repeats of the same folds, on the
    confirm stage's combos when there are many or when `confirming`), or why none of them can: the corrected
    interval keeps n_test/n_train however many repeats, so its width has a floor. Called when the design in use
    does not reach it."""
    confirm = confirming or comparisons > confirm_top
    m = min(confirm_top, comparisons) if confirm else comparisons
    where = f"the confirm stage's {m} combos" if confirm else f"the {m} combo{'s' if m != 1 else ''}"
    for repeats in range(1, 101):
        gain = min_detectable_gain(spread, repeats * folds, test_over_train, m)
        if gain <= TARGET_GAIN:
            flags = f"--confirm-top {m} --confirm-repeats {repeats}" if confirm else f"--repeats {repeats}"
            return f"{TARGET_GAIN:g} needs {repeats} x {folds} splits over {where} ({flags}), at this spread"
    ten = test_over_train * (folds - 1) / 9
    floor = min_detectable_gain(spread, 1000 * folds, test_over_train, m)
    floor10 = min_detectable_gain(spread, 10000, ten, m)
    return (f"{TARGET_GAIN:g} is out of reach at this spread: with {folds} folds even unlimited repeats "
                   f"leave {floor:.3f} (n_test/n_train {test_over_train:.2f} stays in the corrected interval); "
                   f"--folds 10 would leave {floor10:.3f}; more labelled originals lower both")  # fmt: skip
