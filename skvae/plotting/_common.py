"""What the displays share: the matplotlib check, argument checks, image grids and Axes.

:class:`_DisplayMixin` is the base of every display: it checks that matplotlib is there
and that the estimator is a fitted skvae model with the methods the display calls, and
it makes or splits the Axes a display draws into.
"""

from numbers import Integral

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .._base import BaseVAE
from .._cluster import VAEClusterer
from .._estimator import VAEEstimator
from .._outlier import VAEOutlierDetector

_INSTALL_HINT = 'pip install "skvae[plot]"'
#: skvae's models, named in the message of a display refusing an estimator.
_MODELS = (VAEEstimator, VAEOutlierDetector, VAEClusterer)


def _check_matplotlib(caller):
    """Raise an ImportError naming the ``plot`` extra when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
        import matplotlib.pyplot  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib, an optional dependency of skvae. Install it with "
            f"{_INSTALL_HINT} (or pip install matplotlib)."
        ) from exc


def _check_dims(dims, n_components, *, max_dims=None):
    """``dims`` (an int or a sequence of ints) as a tuple of valid latent indices."""
    seq = [dims] if isinstance(dims, Integral) else list(np.ravel(np.asarray(dims, dtype=object)))
    if not seq or not all(isinstance(d, Integral) and not isinstance(d, bool) for d in seq):
        raise ValueError(f"dims must be an int or a sequence of ints, got {dims!r}.")
    if max_dims is not None and len(seq) > max_dims:
        raise ValueError(f"dims must hold 1 or {max_dims} latent dimensions, got {dims!r}.")
    bad = [int(d) for d in seq if not 0 <= d < n_components]
    if bad:
        raise ValueError(
            f"dims={dims!r} is out of range: the model has n_components={n_components}, so "
            f"the latent dimensions are 0 to {n_components - 1}."
        )
    if len(set(seq)) != len(seq):
        raise ValueError(f"dims={dims!r} repeats a latent dimension.")
    return tuple(int(d) for d in seq)


def _check_image_shape(image_shape, n_features):
    """``image_shape`` as (height, width) of ``n_features`` pixels, or None."""
    if image_shape is None:
        return None
    shape = tuple(image_shape) if not isinstance(image_shape, Integral) else (image_shape,)
    if len(shape) != 2 or not all(isinstance(s, Integral) and s > 0 for s in shape):
        raise ValueError(
            f"image_shape must be (height, width) with positive ints, got {image_shape!r}."
        )
    if shape[0] * shape[1] != n_features:
        raise ValueError(
            f"image_shape={shape} holds {shape[0] * shape[1]} pixels, but the model has "
            f"{n_features} features: height * width must equal the number of features."
        )
    return tuple(int(s) for s in shape)


def _check_positive_int(value, name):
    """``value`` as an int, or a ValueError naming the parameter when it is not positive."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def _mosaic(images, image_shape, n_cols):
    """Images in a grid of ``n_cols`` columns, one NaN (blank) pixel between them."""
    h, w = image_shape
    n_rows = -(-len(images) // n_cols)
    mosaic = np.full((n_rows * (h + 1) - 1, n_cols * (w + 1) - 1), np.nan)
    for k, image in enumerate(images):
        r, c = divmod(k, n_cols)
        mosaic[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image.reshape(h, w)
    return mosaic


def _image_style(values, cmap, kwargs):
    """``imshow`` arguments: one grey scale over all ``values``, sharp pixels, then kwargs."""
    style = {"cmap": cmap, "vmin": values.min(), "vmax": values.max(), "interpolation": "nearest"}
    return {**style, **kwargs}


def _hide_frame(ax):
    """No vertical ticks, no tick marks and no spines around pictures."""
    ax.set_yticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def _new_figure(n_rows, figsize):
    """A new figure of ``n_rows`` stacked Axes; returns it and an array of the Axes."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(n_rows, 1, figsize=figsize, squeeze=False, layout="constrained")
    return fig, axes[:, 0]


def _refusal(caller, model, needs, hint):
    """Why ``caller`` refuses ``model``, and which estimators it takes."""
    name = type(model).__name__
    accepted = ", ".join(f"a {m.__name__}" for m in _MODELS if all(hasattr(m, n) for n in needs))
    message = f"estimator must be {accepted} or a Pipeline whose last step is one, got {name}."
    if isinstance(model, BaseVAE):
        missing = " and ".join(n for n in needs if not hasattr(model, n))
        message = f"{caller} calls {missing} of the model, which {name} does not have: {message}"
    members = getattr(model, "estimators_", None)
    if isinstance(members, list) and members and isinstance(members[0], BaseVAE):
        message += f" A {name}'s models are its estimators_: pass one of them."
    return message + hint


class _DisplayMixin:
    """What every display does the same way: matplotlib, the estimator, Axes and figure.

    ``from_estimator`` starts with :meth:`_validate_estimator`, which takes any fitted
    skvae model that has the methods in ``_needs``. ``plot`` starts with
    :meth:`_require_matplotlib`, checks its data, takes its Axes from
    :meth:`_validate_plot_params` (one Axes) or :meth:`_validate_plot_axes` (a column)
    and, with one Axes, ends with :meth:`_set_axes`.
    """

    #: The methods of the model that ``from_estimator`` calls.
    _needs = ()

    @classmethod
    def _require_matplotlib(cls, method):
        _check_matplotlib(f"{cls.__name__}.{method}")

    @classmethod
    def _validate_estimator(cls, estimator, needs=None, hint=""):
        """The fitted skvae model of ``estimator``: itself, or the last step of a Pipeline.

        The model must have each method of ``needs`` (by default the display's
        ``_needs``); ``hint`` ends the message of the TypeError raised when it does not.
        """
        cls._require_matplotlib("from_estimator")
        vae = estimator[-1] if isinstance(estimator, Pipeline) else estimator
        needs = cls._needs if needs is None else needs
        if not isinstance(vae, BaseVAE) or not all(hasattr(vae, n) for n in needs):
            raise TypeError(_refusal(f"{cls.__name__}.from_estimator", vae, needs, hint))
        check_is_fitted(estimator)
        check_is_fitted(vae)
        return vae

    @staticmethod
    def _validate_plot_params(ax=None, *, figsize=None):
        """The Axes to draw into and its figure: ``ax``, or the Axes of a new figure."""
        if ax is None:
            fig, axes = _new_figure(1, figsize)
            return axes[0], fig
        return ax, ax.figure

    @staticmethod
    def _validate_plot_axes(ax, n_rows, figsize):
        """``n_rows`` stacked Axes: a new figure, ``ax`` split in rows, or the Axes given.

        Returns the figure, an object array of the Axes and the bounding Axes (or None).
        """
        import matplotlib.pyplot as plt

        if ax is None:
            return *_new_figure(n_rows, figsize), None
        if not isinstance(ax, plt.Axes):
            axes = np.asarray(ax, dtype=object).ravel()
            if axes.size != n_rows:
                raise ValueError(
                    f"ax holds {axes.size} Axes, but there are {n_rows} latent dimensions to "
                    "draw: pass one Axes per dimension, a single Axes to split, or None."
                )
            return axes[0].figure, axes, None
        spec = ax.get_subplotspec()
        if spec is None:
            raise ValueError(
                "ax must come from plt.subplots or Figure.add_subplot to be split into one "
                "row per latent dimension; or pass one Axes per dimension."
            )
        if not ax.axison:
            raise ValueError(
                "ax was already split by a previous plot; pass ax=display.axes_ instead."
            )
        ax.set_axis_off()
        grid = spec.subgridspec(n_rows, 1)
        axes = np.array([ax.figure.add_subplot(grid[i, 0]) for i in range(n_rows)], dtype=object)
        return ax.figure, axes, ax

    def _set_axes(self, ax, fig):
        """Keep the Axes and figure drawn into as ``ax_`` and ``figure_``; returns self."""
        self.ax_ = ax
        self.figure_ = fig
        return self
