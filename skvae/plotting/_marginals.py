"""MarginalsDisplay: each column's distribution in the data beside the model's draws."""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import _num_samples

from .._tables import NUMBER, _columns, _is_missing, container_of
from ._common import _check_positive_int, _DisplayMixin


def _frame_columns(data, names, what, source="feature_names"):
    """The columns of a pandas or polars frame, or of a 2-D array: names, arrays, kinds.

    A frame's column holds labels when the estimators read it as labels: when it is not
    numeric (see ``skvae._tables``); an array's columns do when its dtype holds strings,
    objects or booleans.
    """
    container = container_of(data)
    if container is not None:
        layout = list(_columns(data, container))
        columns = [str(name) for name, _, _, _ in layout]
        values = [np.asarray(series) for _, _, _, series in layout]
        labels = [kind != NUMBER for _, kind, _, _ in layout]
        # pandas and polars categories keep the order of their categories.
        orders = [_category_order(series) for _, _, _, series in layout]
        return columns, values, labels, orders
    array = np.asarray(data)
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D, got an array of shape {array.shape}.")
    columns = [str(n) for n in names] if names is not None else None
    if columns is None:
        columns = [f"x{j}" for j in range(array.shape[1])]
    if len(columns) != array.shape[1]:
        raise ValueError(f"{what} has {array.shape[1]} columns, but {source} has {len(columns)}.")
    values = [array[:, j] for j in range(array.shape[1])]
    labels = array.dtype.kind in "OUSTb"
    return columns, values, [labels] * array.shape[1], [None] * array.shape[1]


def _category_order(series):
    """The declared categories of a pandas categorical or polars enum column, else None."""
    declared = getattr(series.dtype, "categories", None)
    # A polars Categorical's categories are a shared pool of strings, not an order.
    return declared.to_list() if hasattr(declared, "to_list") else None


def _categories(real, synthetic, order):
    """The categories drawn as bars, left to right: the real column's order, then new ones."""
    seen = list(order) if order is not None else []
    for value in (*real, *synthetic):
        if value not in seen:
            seen.append(value)
    if order is None:
        try:
            seen = sorted(seen)
        except TypeError:  # labels of mixed types keep the order they came in
            pass
    return seen


def _shares(values, categories):
    """The share of each category among the entries of ``values`` that are not missing."""
    counts = np.array([np.sum(values == c) for c in categories], dtype=np.float64)
    return counts / max(len(values), 1)


_SIDES = ("real", "synthetic")


def _draw_bars(axis, sides, categories, colors, kwargs):
    """Two bars per category, the real rows' share left; returns the two BarContainers."""
    x = np.arange(len(categories))
    containers = []
    for values, offset, color, label in zip(sides, (-0.2, 0.2), colors, _SIDES, strict=True):
        style = {"width": 0.4, "color": color, "label": label, **kwargs}
        containers.append(axis.bar(x + offset, _shares(values, categories), **style))
    axis.set_xticks(x, [str(c) for c in categories])
    if sum(len(str(c)) for c in categories) > 24:  # long labels would overlap
        axis.tick_params(axis="x", labelrotation=90)
    axis.set_ylabel("share")
    return tuple(containers)


def _draw_histograms(axis, sides, bins, colors, kwargs):
    """Two density histograms over the same bins; returns the two lists of patches."""
    sides = [values.astype(np.float64) for values in sides]
    both = np.concatenate(sides)
    edges = np.histogram_bin_edges(both if both.size else [0.0, 1.0], bins=bins)
    patches = []
    for values, color, label in zip(sides, colors, _SIDES, strict=True):
        style = {"alpha": 0.5, "color": color, "label": label, **kwargs}
        patches.append(list(axis.hist(values, bins=edges, density=True, **style)[2]))
    axis.set_ylabel("density")
    return tuple(patches)


class MarginalsDisplay(_DisplayMixin):
    """Real against synthetic marginals: one small plot per column.

    Numeric columns get two density histograms over the same bins; categorical columns
    get two bars per category, the share of the category among each side's entries that
    are not missing. A model that draws good rows has matching marginals; matching
    marginals alone do not show that the columns' relations are right (score the rows
    with ``score_samples`` or a classifier for that).

    Use :meth:`from_estimator` to draw a fitted model's samples beside the data, or
    :meth:`from_data` for any two tables. All parameters are stored as attributes.

    Parameters
    ----------
    real : DataFrame or array-like of shape (n_real, n_features)
        Real rows: a pandas or polars frame, or a 2-D array.

    synthetic : DataFrame or array-like of shape (n_synthetic, n_features)
        Generated rows with the same columns, in the same order.

    feature_names : array-like of str, default=None
        Names of the columns when the data are arrays; None takes a frame's own names,
        or x0, x1, ... for arrays.

    categorical_features : array-like of str or int, default=None
        The columns drawn as bars, by name or index. None: the columns that hold labels
        (in a frame, every column that is not numeric, as the estimators read it:
        strings, booleans, categories, dates; in an array, strings, objects or booleans)
        and the numeric ones with at most ``max_categories`` distinct values in ``real``.

    max_categories : int, default=10
        Numeric columns with at most this many distinct values are drawn as bars when
        ``categorical_features`` is None.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes, shape (n_rows, n_cols)
        The grid, one Axes per column in reading order; Axes past the last column are
        turned off.

    artists_ : dict of str to tuple
        Per column, what was drawn for the real then the synthetic rows: two
        BarContainers for a categorical column, two lists of patches for a histogram.

    categories_ : dict of str to list
        Per categorical column, its categories in the order of the bars.

    legend_ : matplotlib Legend
        The legend of the two sides, below the grid.

    figure_ : matplotlib Figure
        Figure containing the grid.

    See Also
    --------
    SamplesDisplay : Real and generated rows of pixels, as images.
    skvae.VAEEstimator.sample : The draws of :meth:`from_estimator`.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skvae.plotting import MarginalsDisplay
    >>> rng = np.random.default_rng(0)
    >>> real = pd.DataFrame({"size": rng.normal(size=200), "kind": rng.choice(["a", "b"], 200)})
    >>> fake = pd.DataFrame({"size": rng.normal(size=100), "kind": ["a"] * 75 + ["b"] * 25})
    >>> display = MarginalsDisplay.from_data(real, fake)
    >>> display.categories_
    {'kind': ['a', 'b']}
    >>> [float(bar.get_height()) for bar in display.artists_["kind"][1]]  # synthetic shares
    [0.75, 0.25]
    >>> plt.close("all")
    """

    #: The synthetic rows come from ``sample``.
    _needs = ("sample",)

    def __init__(
        self,
        *,
        real,
        synthetic,
        feature_names=None,
        categorical_features=None,
        max_categories=10,
    ):
        self.real = real
        self.synthetic = synthetic
        self.feature_names = feature_names
        self.categorical_features = categorical_features
        self.max_categories = max_categories

    def plot(self, ax=None, *, n_cols=None, bins=20, colors=("C0", "C1"), **kwargs):
        """Draw one plot per column.

        Parameters
        ----------
        ax : array-like of matplotlib Axes, default=None
            At least one Axes per column, used in order (extra ones are turned off);
            None makes a new figure.

        n_cols : int, default=None
            Plots per row of a new figure; None is at most 4.

        bins : int, default=20
            Bins of each histogram, over the range of both sides together.

        colors : tuple of two colours, default=("C0", "C1")
            Colours of the real and the synthetic rows.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.bar` and
            :meth:`matplotlib.axes.Axes.hist` (e.g. ``alpha``).

        Returns
        -------
        display : MarginalsDisplay
            The display, with ``axes_``, ``artists_``, ``categories_``, ``legend_`` and
            ``figure_`` set.
        """
        self._require_matplotlib("plot")
        columns, real, synthetic, bars, orders = self._check_data()
        n_features = len(columns)
        bins = _check_positive_int(bins, "bins")
        if n_cols is None:
            n_cols = min(n_features, 4)
        n_cols = min(_check_positive_int(n_cols, "n_cols"), n_features)
        n_rows = -(-n_features // n_cols)
        fig, axes = self._grid(ax, n_rows, n_cols, n_features)
        self.artists_, self.categories_ = {}, {}
        for j, (name, r, s) in enumerate(zip(columns, real, synthetic, strict=True)):
            axis = axes.flat[j]
            r, s = r[~_is_missing(r)], s[~_is_missing(s)]
            if bars[j]:
                categories = _categories(r, s, orders[j])
                self.artists_[name] = _draw_bars(axis, (r, s), categories, colors, kwargs)
                self.categories_[name] = categories
            else:
                self.artists_[name] = _draw_histograms(axis, (r, s), bins, colors, kwargs)
            axis.set_title(name)
        for axis in axes.flat[n_features:]:
            axis.set_axis_off()
        handles = [artists[0] for artists in self.artists_[columns[0]]]
        # "outside" places the legend below the grid, which only a constrained layout can.
        constrained = fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
        loc = "outside lower center" if constrained else "lower center"
        self.legend_ = fig.legend(handles, _SIDES, loc=loc, ncol=2, frameon=False)
        self.axes_ = axes
        self.figure_ = fig
        return self

    @classmethod
    def from_data(
        cls,
        real,
        synthetic,
        *,
        feature_names=None,
        categorical_features=None,
        max_categories=10,
        ax=None,
        n_cols=None,
        bins=20,
        **kwargs,
    ):
        """Draw the marginals of two tables with the same columns.

        Parameters
        ----------
        real : DataFrame or array-like of shape (n_real, n_features)
            Real rows.

        synthetic : DataFrame or array-like of shape (n_synthetic, n_features)
            Generated rows, e.g. from another synthesizer.

        feature_names, categorical_features, max_categories
            See :class:`MarginalsDisplay`.

        ax, n_cols, bins, **kwargs
            Where and how to draw (see :meth:`plot`).

        Returns
        -------
        display : MarginalsDisplay
            The display, with ``axes_``, ``artists_``, ``categories_``, ``legend_`` and
            ``figure_`` set.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> import numpy as np
        >>> from skvae.plotting import MarginalsDisplay
        >>> rng = np.random.default_rng(0)
        >>> real, fake = rng.normal(size=(300, 3)), rng.normal(0.5, size=(300, 3))
        >>> display = MarginalsDisplay.from_data(real, fake, n_cols=2)
        >>> display.axes_.shape, list(display.artists_)
        ((2, 2), ['x0', 'x1', 'x2'])
        >>> plt.close("all")
        """
        cls._require_matplotlib("from_data")
        display = cls(
            real=real,
            synthetic=synthetic,
            feature_names=feature_names,
            categorical_features=categorical_features,
            max_categories=max_categories,
        )
        return display.plot(ax=ax, n_cols=n_cols, bins=bins, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        *,
        n_samples=None,
        random_state=None,
        categorical_features=None,
        max_categories=10,
        ax=None,
        n_cols=None,
        bins=20,
        **kwargs,
    ):
        """Draw the marginals of X beside those of rows drawn from the model.

        Parameters
        ----------
        estimator : VAEEstimator, VAEOutlierDetector or Pipeline
            A fitted VAEEstimator or VAEOutlierDetector (any fitted skvae model, as they
            all ``sample``), or a fitted Pipeline whose last step is one (every step then
            needs ``inverse_transform``).

        X : DataFrame or array-like of shape (n_rows, n_features)
            Real rows, in the form the estimator was fitted on.

        n_samples : int, default=None
            Rows to draw with ``estimator.sample``; None draws as many as X has.

        random_state : int, RandomState instance or None, default=None
            Seed of the draws; None uses the estimator's ``random_state``.

        categorical_features, max_categories
            See :class:`MarginalsDisplay`.

        ax, n_cols, bins, **kwargs
            Where and how to draw (see :meth:`plot`).

        Returns
        -------
        display : MarginalsDisplay
            The display, with ``axes_``, ``artists_``, ``categories_``, ``legend_`` and
            ``figure_`` set.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> from sklearn.datasets import load_wine
        >>> from skvae import VAEEstimator
        >>> from skvae.plotting import MarginalsDisplay
        >>> X, _ = load_wine(return_X_y=True, as_frame=True)
        >>> vae = VAEEstimator(hidden_layer_sizes=(16,), tol=0.1, random_state=0).fit(X)
        >>> display = MarginalsDisplay.from_estimator(vae, X, n_samples=500, random_state=0)
        >>> display.synthetic.shape, display.axes_.shape  # 13 columns, 4 plots a row
        ((500, 13), (4, 4))
        >>> plt.close("all")
        """
        vae = cls._validate_estimator(estimator)
        n_rows = _num_samples(X)
        n_samples = n_rows if n_samples is None else _check_positive_int(n_samples, "n_samples")
        rng = check_random_state(vae.random_state if random_state is None else random_state)
        synthetic = vae.sample(n_samples, random_state=rng, missing=False)
        if isinstance(estimator, Pipeline) and len(estimator) > 1:
            synthetic = estimator[:-1].inverse_transform(synthetic)
        names = getattr(estimator, "feature_names_in_", None)
        display = cls(
            real=X,
            synthetic=synthetic,
            feature_names=names,
            categorical_features=categorical_features,
            max_categories=max_categories,
        )
        return display.plot(ax=ax, n_cols=n_cols, bins=bins, **kwargs)

    @staticmethod
    def _grid(ax, n_rows, n_cols, n_features):
        """A new figure of n_rows x n_cols Axes, or the Axes given, as a 2-D array."""
        import matplotlib.pyplot as plt

        if ax is None:
            figsize = (2.8 * n_cols, 0.4 + 2.3 * n_rows)
            fig, axes = plt.subplots(
                n_rows, n_cols, figsize=figsize, squeeze=False, layout="constrained"
            )
            return fig, axes
        axes = np.asarray(ax, dtype=object)
        if axes.size < n_features:
            raise ValueError(
                f"ax holds {axes.size} Axes, but there are {n_features} columns to draw: "
                "pass at least one Axes per column, or None."
            )
        return axes.flat[0].figure, axes.reshape(1, -1) if axes.ndim < 2 else axes

    def _check_data(self):
        columns, real, labels, orders = _frame_columns(self.real, self.feature_names, "real")
        names, synthetic, synthetic_labels, _ = _frame_columns(
            self.synthetic, columns, "synthetic", "real"
        )
        if names != columns:
            raise ValueError(
                f"real and synthetic must have the same columns in the same order, got "
                f"{columns} and {names}."
            )
        max_categories = _check_positive_int(self.max_categories, "max_categories")
        if self.categorical_features is None:
            bars = [
                label or other or len(np.unique(r[~_is_missing(r)])) <= max_categories
                for label, other, r in zip(labels, synthetic_labels, real, strict=True)
            ]
        else:
            chosen = np.ravel(np.asarray(self.categorical_features, dtype=object)).tolist()
            unknown = [c for c in chosen if not (c in columns or c in range(len(columns)))]
            if unknown:
                raise ValueError(
                    f"categorical_features names columns that are not there: {unknown}; the "
                    f"columns are {columns}."
                )
            bars = [name in chosen or j in chosen for j, name in enumerate(columns)]
        return columns, real, synthetic, bars, orders
