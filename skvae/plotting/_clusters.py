"""ClustersDisplay: each cluster's decoded centre, as an image or as a profile of columns."""

import numpy as np
from sklearn.pipeline import Pipeline

from ._common import (
    _check_image_shape,
    _check_positive_int,
    _DisplayMixin,
    _hide_frame,
    _image_style,
    _mosaic,
)


class ClustersDisplay(_DisplayMixin):
    """The centre of each cluster of a :class:`~skvae.VAEClusterer`, as the model decodes it.

    For images, the centres in a grid, each titled with its cluster and weight. For a
    table, a profile per cluster: one row of colours per cluster, one column per numeric
    column of the data, each centre in standard deviations of its column from the column's
    mean, so that columns of any units compare (labels and booleans are left out).

    Use :meth:`from_estimator` to make one from a fitted clusterer. All parameters are
    stored as attributes.

    Parameters
    ----------
    centers : ndarray of shape (n_clusters, n_features)
        The clusters' centres: pixels, or (for a profile) columns in standard deviations
        from their mean.

    weights : ndarray of shape (n_clusters,)
        Each cluster's weight in the model.

    image_shape : tuple of (int, int) or None, default=None
        (height, width) of the images; None draws profiles.

    feature_names : list of str or None, default=None
        The names of the profiles' columns.

    Attributes
    ----------
    image_ : matplotlib AxesImage
        The grid of centres, or the profiles.

    ax_ : matplotlib Axes
        Axes with the picture.

    figure_ : matplotlib Figure
        Figure containing it.

    See Also
    --------
    skvae.VAEClusterer : The clusterer whose ``cluster_centers_`` are drawn.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_iris
    >>> from skvae import VAEClusterer
    >>> from skvae.plotting import ClustersDisplay
    >>> X, _ = load_iris(return_X_y=True, as_frame=True)
    >>> clusterer = VAEClusterer(3, hidden_layer_sizes=(16,), tol=0.1, random_state=0).fit(X)
    >>> display = ClustersDisplay.from_estimator(clusterer, X)
    >>> display.centers.shape, display.image_.get_array().shape
    ((3, 4), (3, 4))
    >>> plt.close("all")
    """

    _needs = ("predict_proba", "cluster_centers_")

    def __init__(self, *, centers, weights, image_shape=None, feature_names=None):
        self.centers = centers
        self.weights = weights
        self.image_shape = image_shape
        self.feature_names = feature_names

    def plot(self, ax=None, *, n_cols=None, cmap=None, **kwargs):
        """Draw the centres.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None makes a new figure.

        n_cols : int, default=None
            Images per row of the grid; None makes it about square. Profiles ignore it.

        cmap : str or matplotlib Colormap, default=None
            "gray_r" for images; "RdBu_r" for profiles, centred on the columns' means.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.imshow`.

        Returns
        -------
        display : ClustersDisplay
            The display, with ``image_``, ``ax_`` and ``figure_`` set.
        """
        self._require_matplotlib("plot")
        centers = np.asarray(self.centers, dtype=float)
        labels = [f"{c}: {w:.0%}" for c, w in enumerate(np.asarray(self.weights))]
        if self.image_shape is not None:
            h, w = _check_image_shape(self.image_shape, centers.shape[1])
            n_cols = int(np.ceil(np.sqrt(len(centers)))) if n_cols is None else n_cols
            n_cols = min(_check_positive_int(n_cols, "n_cols"), len(centers))
            n_rows = -(-len(centers) // n_cols)
            ax, fig = self._validate_plot_params(
                ax, figsize=(1.0 + 1.2 * n_cols * w / h, 0.8 + 1.3 * n_rows)
            )
            style = _image_style(centers, cmap or "gray_r", kwargs)
            self.image_ = ax.imshow(_mosaic(centers, (h, w), n_cols), **style)
            for k, label in enumerate(labels):
                r, c = divmod(k, n_cols)
                ax.text(c * (w + 1) + w / 2, r * (h + 1) - 0.6, label, ha="center", fontsize=8)
            ax.set_xticks([])
            _hide_frame(ax)
            ax.set_title("cluster: weight", fontsize=9)
            return self._set_axes(ax, fig)
        n_clusters, n_features = centers.shape
        ax, fig = self._validate_plot_params(
            ax, figsize=(2.0 + 0.5 * n_features, 1.2 + 0.35 * n_clusters)
        )
        limit = max(float(np.nanmax(np.abs(centers))), 1e-12)
        style = {"cmap": cmap or "RdBu_r", "vmin": -limit, "vmax": limit, "aspect": "auto"}
        self.image_ = ax.imshow(centers, **{**style, **kwargs})
        names = self.feature_names
        names = [f"x{j}" for j in range(n_features)] if names is None else list(names)
        ax.set_xticks(range(n_features), names, rotation=45, ha="right")
        ax.set_yticks(range(n_clusters), labels)
        ax.set_ylabel("cluster: weight")
        fig.colorbar(self.image_, ax=ax, label="SDs from the mean")
        return self._set_axes(ax, fig)

    @classmethod
    def from_estimator(cls, estimator, X, *, image_shape=None, ax=None, n_cols=None, **kwargs):
        """Draw the decoded centres of a fitted clusterer.

        Parameters
        ----------
        estimator : VAEClusterer or Pipeline
            A fitted VAEClusterer, or a fitted Pipeline whose last step is one (the
            earlier steps then need ``inverse_transform``: the centres are drawn in the
            units of the Pipeline's input).

        X : array-like or DataFrame of shape (n_rows, n_features)
            The data, in those units: profiles measure each centre against its column's
            mean and standard deviation here. Images do not use it.

        image_shape : tuple of (int, int) or None, default=None
            (height, width) of images whose pixels are the features in row-major order;
            None draws profiles.

        ax : matplotlib Axes, default=None
            Axes to draw into; None makes a new figure.

        n_cols : int, default=None
            Images per row of the grid (see :meth:`plot`).

        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ClustersDisplay
            The display, drawn.
        """
        model = cls._validate_estimator(estimator)
        centers = model.cluster_centers_
        if isinstance(estimator, Pipeline) and len(estimator) > 1:
            centers = estimator[:-1].inverse_transform(centers)
        names = None
        if hasattr(centers, "columns"):  # a frame: its numeric columns
            import pandas as pd

            centers = pd.DataFrame(centers) if not isinstance(centers, pd.DataFrame) else centers
            centers = centers.select_dtypes("number")
            names = [str(c) for c in centers.columns]
            X = pd.DataFrame(X)[centers.columns]
        centers = np.asarray(centers, dtype=float)
        if image_shape is None:
            data = np.asarray(X, dtype=float)
            scale = np.nanstd(data, axis=0)
            centers = (centers - np.nanmean(data, axis=0)) / np.where(scale > 0, scale, 1.0)
        return cls(
            centers=centers, weights=model.weights_, image_shape=image_shape, feature_names=names
        ).plot(ax=ax, n_cols=n_cols, **kwargs)
