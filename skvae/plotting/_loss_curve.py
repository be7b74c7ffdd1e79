"""LossCurveDisplay: the training and validation losses per epoch."""

import numpy as np

from ._common import _DisplayMixin


class LossCurveDisplay(_DisplayMixin):
    """Training and validation loss per epoch.

    Both curves are in nats per sample, lower is better: the training loss is
    ``loss_curve_``, the negative ELBO of the training rows (with the KL term weighted by
    ``beta`` and the warm-up), averaged over the epoch's minibatches as the weights move;
    the validation loss is ``-validation_scores_``, the negative ELBO of the rows held out
    for early stopping, computed at the end of the epoch with the averaged weights that
    fit keeps. With ``beta=1`` and no warm-up both estimate the same quantity, but the
    validation loss can lie below the training loss since it judges the averaged weights;
    a validation loss that rises while the training loss falls shows overfitting. A
    dotted vertical line marks the epoch whose weights early stopping kept. For a
    :class:`~skvae.VAEOutlierDetector` both curves are of the rows its trimming keeps:
    the training loss leaves out each minibatch's least likely rows once trimming has
    begun, and the validation loss is of the likeliest ``support_fraction`` of the
    held-out rows.

    Use :meth:`from_estimator` to make one from a fitted model. All parameters are
    stored as attributes.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss per epoch.

    validation_scores : array-like of shape (n_epochs,), default=None
        Validation score (ELBO, higher is better) per epoch; None draws the training loss
        alone (a model fitted with ``early_stopping=False``).

    best_validation_score : float, default=None
        The validation score whose weights were kept; its last epoch gets a vertical line.

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
        The training loss, then the validation loss when there is one.

    best_line_ : matplotlib Line2D or None
        The vertical line at the epoch whose weights were kept.

    ax_ : matplotlib Axes
        Axes with the curves.

    figure_ : matplotlib Figure
        Figure containing the curves.

    See Also
    --------
    sklearn.model_selection.LearningCurveDisplay : Scores against the training set size.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skvae import VAEEstimator
    >>> from skvae.plotting import LossCurveDisplay
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = VAEEstimator(hidden_layer_sizes=(32,), tol=0.1, random_state=0).fit(X)
    >>> display = LossCurveDisplay.from_estimator(vae)
    >>> [line.get_label() for line in display.lines_]
    ['training loss', 'validation loss']
    >>> bool(np.all(display.lines_[0].get_ydata() == vae.loss_curve_))
    True
    >>> plt.close("all")
    """

    #: Every fitted skvae model keeps its curves: no method is called.
    _needs = ()

    def __init__(self, *, loss_curve, validation_scores=None, best_validation_score=None):
        self.loss_curve = loss_curve
        self.validation_scores = validation_scores
        self.best_validation_score = best_validation_score

    def plot(self, ax=None, **kwargs):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw into; None makes a new figure.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for both curves.

        Returns
        -------
        display : LossCurveDisplay
            The display, with ``lines_``, ``best_line_``, ``ax_`` and ``figure_`` set.
        """
        self._require_matplotlib("plot")
        loss = np.asarray(self.loss_curve, dtype=np.float64)
        if loss.ndim != 1 or loss.size == 0:
            raise ValueError("loss_curve must be a non-empty 1-D sequence of losses.")
        scores = None
        if self.validation_scores is not None:
            scores = np.asarray(self.validation_scores, dtype=np.float64)
            if scores.ndim != 1 or len(scores) > len(loss):
                raise ValueError(
                    "validation_scores must be a 1-D sequence no longer than loss_curve."
                )
        ax, fig = self._validate_plot_params(ax)
        epochs = np.arange(1, len(loss) + 1)
        self.lines_ = list(ax.plot(epochs, loss, label="training loss", **kwargs))
        self.best_line_ = None
        if scores is not None:
            # Validation can start later than training (a warm start that turned it on).
            val_epochs = epochs[len(loss) - len(scores) :]
            self.lines_ += ax.plot(val_epochs, -scores, label="validation loss", **kwargs)
            best = self.best_validation_score
            kept = np.flatnonzero(scores == best) if best is not None else []
            if len(kept):
                epoch = int(val_epochs[kept[-1]])
                self.best_line_ = ax.axvline(
                    epoch, color="0.4", linestyle=":", label=f"weights kept (epoch {epoch})"
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss per sample (nats)")
        ax.legend()
        return self._set_axes(ax, fig)

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """Plot the loss curves of a fitted model.

        Parameters
        ----------
        estimator : VAEEstimator, VAEOutlierDetector or Pipeline
            A fitted VAEEstimator or VAEOutlierDetector (any fitted skvae model), or a
            fitted Pipeline whose last step is one.

        ax : matplotlib Axes, default=None
            Axes to draw into; None makes a new figure.

        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for both curves (see :meth:`plot`).

        Returns
        -------
        display : LossCurveDisplay
            The display, with ``lines_``, ``best_line_``, ``ax_`` and ``figure_`` set.

        Examples
        --------
        >>> import matplotlib.pyplot as plt
        >>> from sklearn.datasets import load_digits
        >>> from skvae import VAEEstimator
        >>> from skvae.plotting import LossCurveDisplay
        >>> X, _ = load_digits(return_X_y=True)
        >>> vae = VAEEstimator(
        ...     hidden_layer_sizes=(32,), early_stopping=False, tol=0.1, random_state=0
        ... ).fit(X)
        >>> display = LossCurveDisplay.from_estimator(vae)  # no validation curve
        >>> len(display.lines_), display.best_line_ is None
        (1, True)
        >>> plt.close("all")
        """
        vae = cls._validate_estimator(estimator)
        display = cls(
            loss_curve=vae.loss_curve_,
            validation_scores=vae.validation_scores_,
            best_validation_score=vae.best_validation_score_,
        )
        return display.plot(ax=ax, **kwargs)
