"""The data side of the likelihood families: domain checks, what is learned from X, scaling.

Everything here is numpy and runs before training or on new data; the torch side
(log-probability, mean, sampler) is in ``_likelihoods`` and ``_count_likelihoods``. Each
family names its ``Domain``; families on the same kind of data share one (Bernoulli and
continuous Bernoulli both take values in [0, 1]).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "Codes",
    "Counts",
    "Domain",
    "NonNegative",
    "Real",
    "Totals",
    "UnitInterval",
    "column_max",
    "infer_family",
]


def observed_values(X: np.ndarray) -> np.ndarray:
    """The observed (non-NaN) entries of X, flattened: domain checks ignore missing ones."""
    X = np.asarray(X)
    return X[~np.isnan(X)] if X.dtype.kind == "f" else X.ravel()


def column_max(X: np.ndarray) -> np.ndarray:
    """Largest observed value of each column (-inf for a column with none), without warnings."""
    # fmax ignores NaN without a masked copy of X (nanmax would warn on all-NaN columns).
    top = np.fmax.reduce(X, axis=0) if X.shape[0] else np.full(X.shape[1], np.nan)
    return np.where(np.isnan(top), -np.inf, top)


def describe(X: np.ndarray) -> str:
    X = observed_values(X)
    return f"values from {np.min(X):.4g} to {np.max(X):.4g}"


def column_moments(X: np.ndarray, step: int = 2**16) -> tuple[np.ndarray, ...]:
    """Mean, standard deviation and constancy of each column, in chunks of rows.

    Chunks keep the temporaries small whatever n_samples is (three passes, one chunk in
    memory at a time); dividing by each column's largest magnitude first keeps squares of
    values like 1e+200 from overflowing. NaN (missing) entries are left out: each column's
    moments are over its observed values.
    """

    def chunks():
        for i in range(0, X.shape[0], step):
            chunk = X[i : i + step]
            yield chunk, np.isnan(chunk)

    n_columns = X.shape[1]
    count = np.zeros(n_columns)
    lo, hi = np.full(n_columns, np.inf), np.full(n_columns, -np.inf)
    for chunk, nan in chunks():
        count += (~nan).sum(axis=0)
        lo = np.minimum(lo, np.where(nan, np.inf, chunk).min(axis=0))
        hi = np.maximum(hi, np.where(nan, -np.inf, chunk).max(axis=0))
    constant = lo == hi
    amax = np.maximum(np.abs(lo), np.abs(hi))
    amax[(amax == 0) | ~np.isfinite(amax)] = 1.0
    count = np.maximum(count, 1)
    total = np.zeros(n_columns)
    for chunk, nan in chunks():
        total += np.where(nan, 0.0, chunk / amax).sum(axis=0)
    mean = total / count
    sq = np.zeros(n_columns)
    for chunk, nan in chunks():
        sq += np.where(nan, 0.0, (chunk / amax - mean) ** 2).sum(axis=0)
    return mean * amax, np.sqrt(sq / count) * amax, constant


#: ``likelihood="auto"`` makes a column of whole numbers with at most this many distinct
#: values categorical: ratings, codes and levels, whose shape no count or Gaussian model fits.
FEW_VALUES = 10
#: ... non-negative integers with a mean above this Gaussian: measurements in whole units
#: (grams, millimetres), which a count family fits no better and trains slowly on.
COUNT_MEAN = 100.0
#: ... and a non-negative, non-integer column with at least this share of zeros a hurdle.
ZERO_SHARE = 0.1
#: ... the family of a column strictly between 0 and 1 (shares, rates), which the
#: continuous Bernoulli fits poorly when they crowd near one end (benchmarks/bench_choices.py).
SHARES = "logit_normal"
#: ... a positive column whose skewness exceeds this, and that of its log in size, the
#: log-normal: amounts and sizes, whose right tail a Gaussian or a t fits poorly.
SKEWED = 1.0
#: ... and a real column whose excess kurtosis exceeds this Student's t: tails heavier than
#: a Laplace distribution's, where a few rows far out would dominate a Gaussian fit.
HEAVY_TAILS = 3.0


#: A column of labels, or of consecutive whole numbers, whose observed values are all
#: different on at least this many rows is taken for an identifier by likelihood="auto".
IDENTIFIER_ROWS = 20


def looks_like_identifier(column: np.ndarray, labels: bool) -> bool:
    """Whether a column's observed values name its rows rather than measure something.

    ``labels``: the column holds labels (as codes). Labels that are all different, or whole
    numbers that are all different and consecutive (1, 2, ..., n in any order), on at least
    ``IDENTIFIER_ROWS`` rows; distinct measurements are not identifiers.
    """
    values = observed_values(column)
    if values.size < IDENTIFIER_ROWS or np.unique(values).size < values.size:
        return False
    if labels:
        return True
    whole = bool(np.all(values == np.round(values)))
    return whole and values.max() - values.min() == values.size - 1


def _standardised_moment(values: np.ndarray, order: int) -> float | None:
    """E[(x - mean)^order] / sd^order of ``values``; None for a constant."""
    centred = values - values.mean()
    biggest = np.max(np.abs(centred), initial=0.0)
    if biggest == 0:
        return None
    centred = centred / biggest  # the ratio is scale-free; this keeps 1e200**4 finite
    return float(np.mean(centred**order) / np.mean(centred**2) ** (order / 2))


def skewness(values: np.ndarray) -> float:
    """The sample skewness of ``values`` (0 for a symmetric sample; 0 for a constant)."""
    moment = _standardised_moment(values, 3)
    return 0.0 if moment is None else moment


def excess_kurtosis(values: np.ndarray) -> float:
    """The sample excess kurtosis of ``values`` (0 for a Gaussian; 0 for a constant)."""
    moment = _standardised_moment(values, 4)
    return 0.0 if moment is None else moment - 3.0


def infer_family(column: np.ndarray) -> str:
    """The family ``likelihood="auto"`` gives a numeric column, from its observed values.

    In this order: only 0 and 1: "bernoulli"; whole numbers with at most ``FEW_VALUES``
    distinct values: "categorical" (fractions are measurements, never codes); non-negative
    integers with a mean of at most ``COUNT_MEAN``: "negative_binomial" when their variance
    exceeds their mean, else "poisson"; values strictly between 0 and 1: ``SHARES``
    ("logit_normal"); other values in [0, 1]: "continuous_bernoulli";
    non-negative values with at least ``ZERO_SHARE`` zeros: "hurdle_lognormal"; positive
    values with a skewness above ``SKEWED`` and above that of their log in size:
    "lognormal"; an excess kurtosis above ``HEAVY_TAILS``: "student_t"; anything else:
    "gaussian".
    """
    values = observed_values(column)
    if np.all((values == 0) | (values == 1)):
        return "bernoulli"
    whole = np.all(values == np.round(values))
    if whole and np.unique(values).size <= FEW_VALUES:
        return "categorical"
    if values.min() >= 0 and whole and values.mean() <= COUNT_MEAN:
        return "negative_binomial" if values.var() > values.mean() else "poisson"
    if values.min() > 0 and values.max() < 1:
        return SHARES
    if values.min() >= 0 and values.max() <= 1:
        return "continuous_bernoulli"
    if values.min() >= 0 and np.mean(values == 0) >= ZERO_SHARE:
        return "hurdle_lognormal"
    if values.min() > 0:
        skew = skewness(values)
        if skew > SKEWED and abs(skewness(np.log(values))) < skew:
            return "lognormal"
    if excess_kurtosis(values) > HEAVY_TAILS:
        return "student_t"
    return "gaussian"


class Domain:
    """Where a family's values live: any finite data, nothing learned, no rescaling."""

    #: What ``unseen`` finds, for the warning that says those values are read as missing.
    unseen_reason = "not seen in fit"

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        """Raise ValueError, in the user's terms, when X is outside the domain."""

    @classmethod
    def learn(cls, name: str, X: np.ndarray, **options: Any) -> dict:
        """What the family learns from the training data before training (e.g. categories)."""
        return {}

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        """Where X holds a value fit never saw and inference treats as missing (None: nowhere)."""
        return None

    @classmethod
    def scaling(cls, X: np.ndarray, **options: Any) -> tuple[np.ndarray, np.ndarray]:
        """Location and scale such that the model is trained on (X - loc) / scale."""
        return np.zeros(X.shape[1]), np.ones(X.shape[1])


class Real(Domain):
    """Real values, standardised for training (per feature, or one scale for all)."""

    @classmethod
    def scaling(
        cls, X: np.ndarray, covariance_type: str = "diag", **options: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        loc, std, constant = column_moments(X)
        # The mean of identical values can be off in the last bit: use the value itself.
        loc[constant] = column_max(X)[constant]
        std[constant] = 0.0
        biggest = std.max()
        if biggest == 0:  # all features constant: nothing to scale by
            return loc, np.ones(X.shape[1])
        if covariance_type == "spherical":
            scale = np.full(X.shape[1], np.sqrt(np.mean((std / biggest) ** 2)) * biggest)
        else:
            # A constant feature is measured against the most variable one, as GaussianNB's
            # var_smoothing is relative to the largest variance.
            scale = np.where(constant, biggest, std)
        return loc, scale


def _outside(X: np.ndarray, inside) -> np.ndarray | None:
    """Observed entries of X where ``inside`` is False (None: nowhere).

    The range of a family that ``likelihood="auto"`` chose from the training values (shares
    in (0, 1), positive amounts) can be left by a test row; inference reads such a value
    as missing rather than fail on an ordinary test split. Training data outside the range
    is still an error (``check``).
    """
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mask = ~np.isnan(X) & ~inside(X)
    return mask if mask.any() else None


class UnitInterval(Domain):
    """Values in [0, 1]: binary data, probabilities, grey levels."""

    unseen_reason = "outside [0, 1]"

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        return _outside(X, lambda v: (v >= 0) & (v <= 1))

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        X = observed_values(X)
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                f"likelihood='{name}' needs data in [0, 1]; got {describe(X)}. Scale the "
                "data (e.g. MinMaxScaler) or use likelihood='gaussian'."
            )


def _transformed_moments(X: np.ndarray, transform) -> tuple[list, list]:
    """Location and spread of each column's transformed observed values (1 if constant)."""
    loc, scale = [], []
    for j in range(X.shape[1]):
        y = transform(observed_values(X[:, j]))
        loc.append(float(y.mean()) if y.size else 0.0)
        spread = float(y.std()) if y.size > 1 else 0.0
        scale.append(spread if spread > 1e-6 else 1.0)
    return loc, scale


class OpenUnitInterval(Domain):
    """Values strictly between 0 and 1 (shares, rates); learned: each column's logit scale."""

    unseen_reason = "outside (0, 1)"

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        return _outside(X, lambda v: (v > 0) & (v < 1))

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        X = observed_values(X)
        if X.size and (X.min() <= 0 or X.max() >= 1):
            raise ValueError(
                f"likelihood='{name}' needs values strictly between 0 and 1; got "
                f"{describe(X)}. Use likelihood='continuous_bernoulli' for data in [0, 1] "
                "with exact zeros or ones."
            )

    @classmethod
    def learn(cls, name: str, X: np.ndarray, **options: Any) -> dict:
        cls.check(name, X)
        loc, scale = _transformed_moments(X, lambda v: np.log(v) - np.log1p(-v))
        return {"transformed_loc": loc, "transformed_scale": scale}


class Positive(Domain):
    """Positive values (amounts, sizes); learned: each column's log scale."""

    unseen_reason = "not positive"

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        return _outside(X, lambda v: v > 0)

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        X = observed_values(X)
        if X.size and X.min() <= 0:
            raise ValueError(
                f"likelihood='{name}' needs positive values; got {describe(X)}. Use "
                "likelihood='hurdle_lognormal' for amounts with exact zeros, or "
                "likelihood='gaussian'."
            )

    @classmethod
    def learn(cls, name: str, X: np.ndarray, **options: Any) -> dict:
        cls.check(name, X)
        loc, scale = _transformed_moments(X, np.log)
        return {"transformed_loc": loc, "transformed_scale": scale}


class Counts(Domain):
    """Non-negative integers."""

    unseen_reason = "not counts (whole numbers from 0)"

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        return _outside(X, lambda v: (v >= 0) & (v == np.round(v)))

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        X = observed_values(X)
        if X.size and (X.min() < 0 or not np.all(X == np.round(X))):
            raise ValueError(
                f"likelihood='{name}' needs non-negative integer counts; got "
                f"{'negative values' if X.min() < 0 else 'non-integer values'} ({describe(X)}). "
                "Pass the counts as they are (not centred, scaled or log-transformed), or use "
                "likelihood='gaussian' for real values."
            )


class Totals(Counts):
    """Counts whose row total is part of the model (a multinomial): no entry may be missing.

    Learned: a negative binomial for the row totals, by the method of moments (a Poisson,
    theta = inf, when the totals vary less than one).
    """

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        return None  # a row's total needs all its counts: nothing can be read as missing

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        X = np.asarray(X)
        if X.dtype.kind == "f" and np.isnan(X).any():
            raise ValueError(
                f"likelihood='{name}' models each row's counts given their total, which a "
                "missing entry leaves unknown: X has NaN in its columns. Fill them, or use "
                "likelihood='poisson' or 'negative_binomial', which take missing entries."
            )
        super().check(name, X)

    @classmethod
    def learn(cls, name: str, X: np.ndarray, **options: Any) -> dict:
        cls.check(name, X)
        totals = np.asarray(X, dtype=np.float64).sum(axis=1)
        mean, var = float(totals.mean()), float(totals.var())
        theta = mean**2 / (var - mean) if var > mean else float("inf")
        return {"total_mean": mean, "total_theta": theta}


class Codes(Domain):
    """Categories per column, as any numbers: learned in fit as each column's distinct values.

    The categorical likelihood works with their positions (codes 0, 1, ...): a column of
    years 2007-2009 has three categories, not 2,010.
    """

    @classmethod
    def learn(cls, name: str, X: np.ndarray, **options: Any) -> dict:
        cls.check(name, X)
        values = [np.unique(observed_values(X[:, j])).tolist() for j in range(X.shape[1])]
        return {"n_categories": [len(v) for v in values], "values": values}

    @staticmethod
    def _known(learned: dict) -> list[list]:
        return learned.get("values") or [list(range(k)) for k in learned["n_categories"]]

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        """Observed values that are none of their column's categories.

        Inference treats them as missing, so that a value the training split happened not
        to hold does not stop ``transform`` or ``score_samples`` on a test split.
        """
        if "n_categories" not in learned:
            return None
        X = np.asarray(X, dtype=np.float64)
        mask = np.zeros(X.shape, dtype=bool)
        for j, known in enumerate(cls._known(learned)):
            mask[:, j] = ~np.isnan(X[:, j]) & ~np.isin(X[:, j], known)
        return mask if mask.any() else None

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        if "n_categories" not in learned:
            return
        for j, known in enumerate(cls._known(learned)):
            seen = np.unique(observed_values(X[:, j]))
            unseen = seen[~np.isin(seen, known)]
            if unseen.size:
                shown = known if len(known) <= 10 else [*known[:10], "..."]
                raise ValueError(
                    f"Category {unseen[0]:g} in categorical column {j} was not seen in fit, "
                    f"where the column's categories were {shown} (partial_fit learns the "
                    "categories from its first block)."
                )


class NonNegative(Domain):
    """Non-negative real values, zeros included; learned: each column's log-scale.

    The location and spread of log(x) over each column's positive values, so that the
    model works with standardised logs whatever the column's units.
    """

    unseen_reason = "negative"

    @classmethod
    def unseen(cls, X: np.ndarray, **learned: Any) -> np.ndarray | None:
        return _outside(X, lambda v: v >= 0)

    @classmethod
    def check(cls, name: str, X: np.ndarray, **learned: Any) -> None:
        X = observed_values(X)
        if X.size and X.min() < 0:
            raise ValueError(
                f"likelihood='{name}' needs non-negative values; got {describe(X)}. Use "
                "likelihood='gaussian' for data with negative values."
            )

    @classmethod
    def learn(cls, name: str, X: np.ndarray, **options: Any) -> dict:
        cls.check(name, X)
        loc, scale = _transformed_moments(X, lambda v: np.log(v[v > 0]))
        return {"log_loc": loc, "log_scale": scale}
