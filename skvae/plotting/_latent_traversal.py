"""LatentTraversalDisplay: what the decoder makes of a sweep along each latent dimension."""

import numpy as np

from ._common import (
    _check_dims,
    _check_image_shape,
    _DisplayMixin,
    _hide_frame,
    _image_style,
    _mosaic,
)

#: Latent dimensions a traversal shows by default, at most.
_MAX_DEFAULT_DIMS = 10


def _check_values(values):
    """The values a traversal sweeps, as a non-empty 1-D float array."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(
            f"values must be a non-empty 1-D sequence of finite numbers, got {values!r}."
        )
    return values


def _check_base(base, n_components):
    """The latent point a traversal starts from, of shape (n_components,)."""
    base = np.asarray(base, dtype=np.float64)
    if base.shape not in ((n_components,), (1, n_components)):
        raise ValueError(
            f"base must be one latent point of shape ({n_components},), got an array of "
            f"shape {base.shape}."
        )
    base = base.reshape(n_components)
    if not np.all(np.isfinite(base)):
        raise ValueError("base contains NaN or infinity.")
    return base


def _default_traversal_dims(vae):
    """Every latent dimension, or the ones with the largest KL when there are too many."""
    n_components = vae.module_.n_components
    if n_components <= _MAX_DEFAULT_DIMS:
        return tuple(range(n_components))
    most_used = np.argsort(-vae.kl_per_component_, kind="stable")
    return tuple(int(d) for d in np.sort(most_used[:_MAX_DEFAULT_DIMS]))


def _draw_image_rows(axes, decoded, dims, labels, image_shape, cmap, kwargs):
    """One row of decoded images per latent dimension; returns the AxesImage of each row."""
    n_dims, n_values, _ = decoded.shape
    style = _image_style(decoded, cmap or "gray_r", kwargs)
    w = image_shape[1]
    centres = np.arange(n_values) * (w + 1) + (w - 1) / 2
    images = np.empty(n_dims, dtype=object)
    for i, (axis, dim) in enumerate(zip(axes, dims, strict=True)):
        images[i] = axis.imshow(_mosaic(decoded[i], image_shape, n_values), **style)
        axis.set_ylabel(f"dim {dim}", rotation=0, ha="right", va="center")
        axis.set_xticks(centres, labels if i == n_dims - 1 else [])
        _hide_frame(axis)
    axes[-1].set_xlabel("value of the latent dimension (prior standard deviations)")
    return images


def _draw_line_rows(axes, decoded, dims, labels, names, cmap, kwargs):
    """One line plot per latent dimension, a line per value; returns the Line2D array."""
    import matplotlib as mpl

    n_dims, n_values, n_features = decoded.shape
    colormap = cmap or "coolwarm"
    colormap = mpl.colormaps[colormap] if isinstance(colormap, str) else colormap
    colors = colormap(np.linspace(0.0, 1.0, n_values))
    lines = np.empty((n_dims, n_values), dtype=object)
    index = np.arange(n_features)
    for i, (axis, dim) in enumerate(zip(axes, dims, strict=True)):
        for j in range(n_values):
            style = {"color": colors[j], "label": labels[j], **kwargs}
            (lines[i, j],) = axis.plot(index, decoded[i, j], **style)
        axis.set_ylabel(f"dim {dim}")
        if names is not None:
            shown = [str(n) for n in names] if i == n_dims - 1 else []
            axis.set_xticks(index, shown, rotation=90 if shown else 0)
    if names is None:
        axes[-1].set_xlabel("feature index")
    return lines


class LatentTraversalDisplay(_DisplayMixin):
    """What the decoder makes of a sweep along each latent dimension.

    For each chosen latent dimension d, the latent point starts at ``base`` and its
    coordinate d takes each of ``values`` in turn, the other coordinates staying where
    they are; the decoder means of these points (``inverse_transform``) are drawn in one
    row per dimension: images side by side when ``image_shape`` is given, else one line
    per value over the features. A dimension the model does not use (its
    ``kl_per_component_`` near 0) changes nothing along its row.

    Use :meth:`from_estimator` to make one from a fitted model. All parameters are
    stored as attributes.

    Parameters
    ----------
    decoded : ndarray of shape (n_dims, n_values, n_features)
        ``decoded[i, j]`` is the decoder mean at ``base`` with coordinate ``dims[i]`` set
        to ``values[j]``.

    dims : tuple of int
        The latent dimensions swept, one row each.

    values : ndarray of shape (n_values,)
        The values the swept coordinate takes, in prior standard deviations.

    base : ndarray of shape (n_components,)
        The latent point the sweeps start from.

    image_shape : tuple of (int, int), default=None
        (height, width) of the images when the features are pixels in row-major order;
        None draws line plots.

    feature_names : array-like of str, default=None
        Names of the features, shown on the line plots' horizontal axis when there are
        at most 30 features.

    Attributes
    ----------
    axes_ : ndarray of matplotlib Axes, shape (n_dims,)
        One Axes per swept dimension, top to bottom.

    images_ : ndarray of matplotlib AxesImage, shape (n_dims,), or None
        With ``image_shape``: one image per row, the decoded images side by side with a
        one-pixel blank (NaN) column between them.

    lines_ : ndarray of matplotlib Line2D, shape (n_dims, n_values), or None
        Without ``image_shape``: the decoded features for each dimension and value.

    legend_ : matplotlib Legend or None
        Without ``image_shape``: the legend of the values, above the top Axes.

    bounding_ax_ : matplotlib Axes or None
        The Axes passed as ``ax`` and split into rows, or None.

    figure_ : matplotlib Figure
        Figure containing the traversal.

    See Also
    --------
    LatentSpaceDisplay : Where the data lie in the latent space.
    skvae.VAEEstimator.inverse_transform : The decoder means drawn here.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAEEstimator
    >>> from skvae.plotting import LatentTraversalDisplay
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
    >>> display = LatentTraversalDisplay.from_estimator(vae, image_shape=(8, 8))
    >>> display.decoded.shape  # 2 dimensions x 7 values x 64 pixels
    (2, 7, 64)
    >>> display.values.round(2).tolist()  # in prior standard deviations
    [-2.5, -1.67, -0.83, 0.0, 0.83, 1.67, 2.5]
    >>> display.images_[0].get_array().shape  # 7 images of 8 x 8, 1-pixel gaps
    (8, 62)
    >>> plt.close("all")
    """

    #: The decoder means come from ``inverse_transform``.
    _needs = ("inverse_transform",)

    def __init__(self, *, decoded, dims, values, base, image_shape=None, feature_names=None):
        self.decoded = decoded
        self.dims = dims
        self.values = values
        self.base = base
        self.image_shape = image_shape
        self.feature_names = feature_names

    def plot(self, ax=None, *, cmap=None, **kwargs):
        """Draw one row per latent dimension.

        With ``image_shape``, each row holds the decoded images side by side; without,
        it holds one line per value over the features.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            None makes a new figure; a single Axes is split into one row per dimension
            (and turned off); otherwise one Axes per dimension.

        cmap : str or matplotlib Colormap, default=None
            Images: the grey levels ("gray_r" by default, dark for high values). Lines:
            the colours of the values ("coolwarm" by default, blue for low values).

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.imshow` (images; ``vmin`` and ``vmax``
            default to the range of all the decoded values, so that the rows share one
            grey scale) or :meth:`matplotlib.axes.Axes.plot` (lines).

        Returns
        -------
        display : LatentTraversalDisplay
            The display, with ``axes_``, ``images_`` or ``lines_`` and ``legend_``,
            ``bounding_ax_`` and ``figure_`` set.
        """
        self._require_matplotlib("plot")
        decoded, dims, values, image_shape = self._check_data()
        n_dims, n_values, _ = decoded.shape
        if image_shape is not None:
            h, w = image_shape
            figsize = (1.0 + 0.9 * n_values * w / h, 0.4 + 0.9 * n_dims)
        else:
            figsize = (8.0, 0.4 + 1.6 * n_dims)
        fig, axes, self.bounding_ax_ = self._validate_plot_axes(ax, n_dims, figsize)
        self.images_ = self.lines_ = self.legend_ = None
        labels = [f"{v:.3g}" for v in values]
        if image_shape is not None:
            self.images_ = _draw_image_rows(axes, decoded, dims, labels, image_shape, cmap, kwargs)
        else:
            names = self.feature_names if decoded.shape[2] <= 30 else None
            self.lines_ = _draw_line_rows(axes, decoded, dims, labels, names, cmap, kwargs)
            # One row of values above the top Axes: a legend beside it would squeeze it.
            self.legend_ = axes[0].legend(
                loc="lower left",
                bbox_to_anchor=(0.0, 1.0),
                ncol=min(n_values, 9),
                frameon=False,
                fontsize="small",
                title="value of the latent dimension (prior standard deviations)",
                title_fontsize="small",
            )
        self.axes_ = axes
        self.figure_ = fig
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        *,
        dims=None,
        values=None,
        base=None,
        image_shape=None,
        ax=None,
        cmap=None,
        **kwargs,
    ):
        """Decode a sweep along each chosen latent dimension and draw it.

        Parameters
        ----------
        estimator : VAEEstimator or Pipeline
            A fitted VAEEstimator, or a fitted Pipeline whose last step is one (every
            step then needs ``inverse_transform``).

        dims : int or sequence of int, default=None
            The latent dimensions to sweep, one row each. None takes all of them when
            there are at most 10, else the 10 with the largest ``kl_per_component_`` (the
            ones the model uses most), in index order.

        values : array-like of shape (n_values,), default=None
            The values the swept coordinate takes (not offsets from ``base``): since the
            prior is N(0, I), they are in prior standard deviations. None is
            ``np.linspace(-2.5, 2.5, 7)``, which spans 99% of the prior.

        base : array-like of shape (n_components,), default=None
            The latent point the sweeps start from; None is the prior mean, zeros. To
            start from a row of X, pass ``estimator.transform(X[[i]])``.

        image_shape : tuple of (int, int), default=None
            (height, width) to draw the decoded features as images, e.g. (8, 8) for
            scikit-learn's digits; height * width must equal the number of features.
            None draws line plots, in the units of the estimator's input: for features on
            very different scales, pass the VAE step of a Pipeline that standardises
            (``pipe[-1]``) to draw them in standard units.

        ax : matplotlib Axes or array-like of Axes, default=None
            Where to draw (see :meth:`plot`).

        cmap : str or matplotlib Colormap, default=None
            Colours (see :meth:`plot`).

        **kwargs : dict
            Passed to ``imshow`` or ``plot`` (see :meth:`plot`).

        Returns
        -------
        display : LatentTraversalDisplay
            The display, with ``axes_``, ``images_`` or ``lines_`` and ``legend_``,
            ``bounding_ax_`` and ``figure_`` set.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> from sklearn.datasets import load_wine
        >>> from sklearn.pipeline import make_pipeline
        >>> from sklearn.preprocessing import StandardScaler
        >>> from skvae import VAEEstimator
        >>> from skvae.plotting import LatentTraversalDisplay
        >>> X, _ = load_wine(return_X_y=True, as_frame=True)
        >>> pipe = make_pipeline(
        ...     StandardScaler(),
        ...     VAEEstimator(n_components=3, hidden_layer_sizes=(16,), tol=0.1, random_state=0),
        ... ).fit(X)
        >>> display = LatentTraversalDisplay.from_estimator(pipe, dims=[0, 1], values=[-2, 0, 2])
        >>> display.lines_.shape  # 2 dimensions x 3 values, in the units of X
        (2, 3)
        >>> plt.close("all")
        """
        vae = cls._validate_estimator(estimator)
        n_components = vae.module_.n_components
        dims = _check_dims(_default_traversal_dims(vae) if dims is None else dims, n_components)
        values = _check_values(np.linspace(-2.5, 2.5, 7) if values is None else values)
        base = _check_base(np.zeros(n_components) if base is None else base, n_components)
        image_shape = _check_image_shape(image_shape, estimator.n_features_in_)
        Z = np.tile(base, (len(dims) * len(values), 1))
        for i, dim in enumerate(dims):
            Z[i * len(values) : (i + 1) * len(values), dim] = values
        decoded = np.asarray(estimator.inverse_transform(Z), dtype=np.float64)
        display = cls(
            decoded=decoded.reshape(len(dims), len(values), -1),
            dims=dims,
            values=values,
            base=base,
            image_shape=image_shape,
            feature_names=getattr(estimator, "feature_names_in_", None),
        )
        return display.plot(ax=ax, cmap=cmap, **kwargs)

    def _check_data(self):
        decoded = np.asarray(self.decoded, dtype=np.float64)
        if decoded.ndim != 3:
            raise ValueError(
                f"decoded must have shape (n_dims, n_values, n_features), got {decoded.shape}."
            )
        dims = tuple(self.dims)
        values = np.asarray(self.values, dtype=np.float64)
        if len(dims) != decoded.shape[0] or len(values) != decoded.shape[1]:
            raise ValueError(
                f"decoded has shape {decoded.shape}, but there are {len(dims)} dims and "
                f"{len(values)} values."
            )
        return decoded, dims, values, _check_image_shape(self.image_shape, decoded.shape[2])
