"""Power-law analysis of artist popularity with the `powerlaw` package (Clauset, Shalizi & Newman:
xmin by minimum KS distance, alpha by maximum likelihood, likelihood-ratio tests against lognormal
and exponential). Part of `ml report data`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

LR_SIGNIFICANCE = 0.1  # Clauset et al.: below this p the sign of R is taken seriously
MIN_TAIL = 50  # xmin candidates keep at least this many artists in the tail


@dataclass(frozen=True)
class LikelihoodRatio:
    alternative: str
    R: float  # log-likelihood ratio power law : alternative; > 0 favours the power law
    p: float  # significance of the sign of R

    @property
    def verdict(self) -> str:
        name = self.alternative
        if self.R > 0 and self.p < LR_SIGNIFICANCE:
            return (
                f"a power law is preferred over {_article(name)} {name} (R = {self.R:.3g}, p = {self.p:.3g})"
            )
        if self.R < 0 and self.p < LR_SIGNIFICANCE:
            return (
                f"a power law is not preferred over {_article(name)} {name}: the {name} fits better "
                f"(R = {self.R:.3g}, p = {self.p:.3g})"
            )
        return (
            f"a power law is not preferred over {_article(name)} {name}: the test cannot tell them apart "
            f"(R = {self.R:.3g}, p = {self.p:.3g} >= {LR_SIGNIFICANCE})"
        )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class PowerLawFit:
    quantity: str
    n: int  # observations
    alpha: float
    sigma: float  # standard error of alpha
    xmin: float
    D: float  # KS distance of the fitted power law to the tail above xmin
    n_tail: int
    tests: tuple[LikelihoodRatio, ...]


class PowerLawUnavailable(ValueError):
    """Too little or too flat data for a power-law fit; the message says why."""


MIN_DISTINCT_VALUES = 5  # a tail needs a few distinct popularity values to fit a slope


def fit_power_law(values: np.ndarray, quantity: str) -> tuple[PowerLawFit, Any]:
    """Discrete power-law fit (xmin by minimum KS distance) and likelihood-ratio tests."""
    import powerlaw

    data = np.asarray(values, dtype=float)
    data = data[data > 0]
    distinct = len(np.unique(data))
    if distinct < MIN_DISTINCT_VALUES:
        raise PowerLawUnavailable(
            f"{len(data):,} artists with only {distinct} distinct value(s) of {quantity} "
            f"(at least {MIN_DISTINCT_VALUES} needed): no tail to fit"
        )
    # Keep at least MIN_TAIL observations above any candidate xmin: tails of a handful of artists
    # give meaningless fits and dominate the running time on the full file.
    upper = np.sort(data)[-MIN_TAIL] if len(data) > MIN_TAIL else data.max()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            fit = powerlaw.Fit(data, discrete=True, xmin=(data.min(), upper), verbose=False)
            tests = []
            for alternative in ("lognormal", "exponential"):
                R, p = fit.distribution_compare("power_law", alternative, normalized_ratio=False)
                tests.append(LikelihoodRatio(alternative=alternative, R=float(R), p=float(p)))
        except (ValueError, ZeroDivisionError, FloatingPointError) as err:
            raise PowerLawUnavailable(f"the fit failed on {len(data):,} artists: {err}") from err
    pl = fit.power_law
    if not (np.isfinite(pl.alpha) and all(np.isfinite([t.R, t.p]).all() for t in tests)):
        raise PowerLawUnavailable(f"the fit on {len(data):,} artists gave no finite alpha / R / p")
    return (
        PowerLawFit(
            quantity=quantity,
            n=len(data),
            alpha=float(pl.alpha),
            sigma=float(pl.sigma),
            xmin=float(fit.xmin),
            D=float(pl.D),
            n_tail=int((data >= fit.xmin).sum()),
            tests=tuple(tests),
        ),
        fit,
    )
