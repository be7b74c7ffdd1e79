"""LatentSpaceDisplay: the posterior means of the rows of X in one or two latent dimensions."""

import numpy as np
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_consistent_length

from ._common import _check_dims, _DisplayMixin

#: Labels with more distinct numeric values than this are coloured as a continuous quantity.
_MAX_CLASSES = 20


def _is_categorical(y):
    """Whether labels y get a discrete colour each (else a colour scale)."""
    if y.dtype.kind in "OUSb":
        return True
    if type_of_target(y) not in ("binary", "multiclass"):
        return False
    return len(np.unique(y)) <= _MAX_CLASSES


def _class_colors(n_classes, cmap):
    """One RGBA colour per class: the first colours of a qualitative map, else sampled."""
    import matplotlib as mpl
    from matplotlib.colors import ListedColormap

    if cmap is None:
        cmap = "tab10" if n_classes <= 10 else "tab20" if n_classes <= 20 else "viridis"
    cmap = mpl.colormaps[cmap] if isinstance(cmap, str) else cmap
    if isinstance(cmap, ListedColormap) and cmap.N >= n_classes:
        return cmap(np.arange(n_classes))
    return cmap(np.linspace(0.0, 1.0, n_classes))


def _scatter_positions(latent, dims, y, codes):
    """Horizontal and vertical positions of the points (see LatentSpaceDisplay's dims)."""
    x = latent[:, dims[0]]
    if len(dims) == 2:
        return x, latent[:, dims[1]]
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=len(x))
    if codes is not None:
        return x, codes + jitter
    return x, jitter if y is None else y


def _class_legend(ax, classes, colors):
    """A legend of the classes, right of the Axes."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], linestyle="", marker="o", color=color, label=str(label))
        for label, color in zip(classes, colors, strict=True)
    ]
    return ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def _label_latent_axes(ax, dims, y, classes):
    """Axis labels of a latent scatter plot; ``classes`` is None unless y is categorical."""
    ax.set_xlabel(f"latent dimension {dims[0]} (posterior mean)")
    if len(dims) == 2:
        ax.set_ylabel(f"latent dimension {dims[1]} (posterior mean)")
    elif classes is not None:
        ax.set_yticks(np.arange(len(classes)), [str(c) for c in classes])
    elif y is None:
        ax.set_yticks([])
    else:
        ax.set_ylabel("y")


class LatentSpaceDisplay(_DisplayMixin):
    """Scatter plot of the posterior means of the rows of X in two latent dimensions.

    Use :meth:`from_estimator` to make one from a fitted model. All parameters are
    stored as attributes.

    Parameters
    ----------
    latent : ndarray of shape (n_samples, n_components)
        Latent points, e.g. the posterior means ``estimator.transform(X)``.

    y : array-like of shape (n_samples,), default=None
        Labels that colour the points. Categories (strings, booleans, or at most 20
        distinct integers) get one colour each from a qualitative colormap and a legend;
        other numbers get a colour scale and a colorbar. None draws every point alike.

    dims : int or tuple of int, default=(0, 1)
        The columns of ``latent`` on the horizontal and vertical axes. A single dimension
        (an int, or the default of a model with ``n_components=1``) is drawn as a strip
        plot: the latent value across, and the category (a small random jitter inside
        each), the value of a numeric y, or a jitter alone without y, upwards.

    Attributes
    ----------
    scatter_ : matplotlib PathCollection
        The points; ``scatter_.get_offsets()`` holds their coordinates.

    legend_ : matplotlib Legend or None
        The legend of the categories, when y is categorical.

    colorbar_ : matplotlib Colorbar or None
        The colour scale, when y is numeric and not categorical.

    ax_ : matplotlib Axes
        Axes with the scatter plot.

    figure_ : matplotlib Figure
        Figure containing the scatter plot.

    See Also
    --------
    LatentTraversalDisplay : What the decoder makes of each latent dimension.
    skvae.VAEEstimator.transform : The posterior means drawn here.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAEEstimator
    >>> from skvae.plotting import LatentSpaceDisplay
    >>> X, y = load_digits(return_X_y=True)
    >>> # A small model with a loose tolerance, to keep the example fast.
    >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
    >>> display = LatentSpaceDisplay.from_estimator(vae, X, y)
    >>> display.scatter_.get_offsets().shape
    (1797, 2)
    >>> [text.get_text() for text in display.legend_.get_texts()][:3]
    ['0', '1', '2']
    >>> plt.close("all")
    """

    #: The posterior means come from ``transform``.
    _needs = ("transform",)

    def __init__(self, *, latent, y=None, dims=(0, 1)):
        self.latent = latent
        self.y = y
        self.dims = dims

    def plot(self, ax=None, *, cmap=None, **kwargs):
        """Draw the scatter plot.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None makes a new figure.

        cmap : str or matplotlib Colormap, default=None
            Colours of y: by default "tab10" (or "tab20") for categories and "viridis"
            for numbers.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.scatter` (e.g. ``s``, ``alpha``).

        Returns
        -------
        display : LatentSpaceDisplay
            The display, with ``scatter_``, ``legend_``, ``colorbar_``, ``ax_`` and
            ``figure_`` set.
        """
        self._require_matplotlib("plot")
        latent, dims, y = self._check_data()
        ax, fig = self._validate_plot_params(ax)
        classes = codes = None
        style = {"s": 10}
        if y is not None and _is_categorical(y):
            classes, codes = np.unique(y, return_inverse=True)
            colors = _class_colors(len(classes), cmap)
            style["c"] = colors[codes]
        elif y is not None:
            style.update(c=y.astype(np.float64), cmap=cmap or "viridis")
        style.update(kwargs)
        self.scatter_ = ax.scatter(*_scatter_positions(latent, dims, y, codes), **style)
        self.legend_ = self.colorbar_ = None
        if classes is not None:
            self.legend_ = _class_legend(ax, classes, colors)
        elif y is not None:
            self.colorbar_ = fig.colorbar(self.scatter_, ax=ax)
        _label_latent_axes(ax, dims, y, classes)
        return self._set_axes(ax, fig)

    @classmethod
    def from_estimator(cls, estimator, X, y=None, *, dims=None, ax=None, cmap=None, **kwargs):
        """Plot the posterior means of the rows of X, coloured by y.

        Parameters
        ----------
        estimator : VAEEstimator or Pipeline
            A fitted VAEEstimator, or a fitted Pipeline whose last step is one.

        X : array-like of shape (n_samples, n_features)
            Rows to encode with ``estimator.transform``.

        y : array-like of shape (n_samples,), default=None
            Labels that colour the points (see :class:`LatentSpaceDisplay`).

        dims : int or tuple of int, default=None
            The latent dimensions to draw, across then upwards: (0, 1) by default, and 0
            for a model with ``n_components=1`` (a strip plot).

        ax : matplotlib Axes, default=None
            Axes to draw into; None makes a new figure.

        cmap : str or matplotlib Colormap, default=None
            Colours of y (see :meth:`plot`).

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.scatter`.

        Returns
        -------
        display : LatentSpaceDisplay
            The display, with ``scatter_``, ``legend_``, ``colorbar_``, ``ax_`` and
            ``figure_`` set.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> from sklearn.datasets import load_wine
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skvae import VAEEstimator
        >>> from skvae.plotting import LatentSpaceDisplay
        >>> X, y = load_wine(return_X_y=True)
        >>> pipe = make_pipeline(
        ...     StandardScaler(),
        ...     VAEEstimator(n_components=3, hidden_layer_sizes=(16,), tol=0.1, random_state=0),
        ... ).fit(X)
        >>> display = LatentSpaceDisplay.from_estimator(pipe, X, y, dims=(0, 2))
        >>> display.ax_.get_ylabel()
        'latent dimension 2 (posterior mean)'
        >>> plt.close("all")
        """
        vae = cls._validate_estimator(estimator)
        n_components = vae.module_.n_components
        if dims is None:
            dims = (0, 1) if n_components >= 2 else 0
        dims = _check_dims(dims, n_components, max_dims=2)
        if y is not None:
            check_consistent_length(X, y)
        latent = estimator.transform(X)
        display = cls(latent=latent, y=y, dims=dims)
        return display.plot(ax=ax, cmap=cmap, **kwargs)

    def _check_data(self):
        latent = np.asarray(self.latent, dtype=np.float64)
        if latent.ndim != 2:
            raise ValueError(f"latent must be 2-D, got an array of shape {latent.shape}.")
        dims = _check_dims(self.dims, latent.shape[1], max_dims=2)
        y = None if self.y is None else np.asarray(self.y)
        if y is not None:
            if y.ndim != 1:
                raise ValueError(f"y must be 1-D, got an array of shape {y.shape}.")
            check_consistent_length(latent, y)
        return latent, dims, y
