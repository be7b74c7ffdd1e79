"""VAEs trained together in one computation are the VAEs each would be alone."""

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator
from skvae._ensemble import EnsembleTrainer, fit_together


def _table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) @ rng.normal(size=(2, 6)) + 0.3 * rng.normal(size=(n, 6))
    X[rng.uniform(size=X.shape) < 0.15] = np.nan
    return X


def _fit_both(template, X, seeds=(1, 2, 3)):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        alone = [clone(template).set_params(random_state=s).fit(X) for s in seeds]
        together = fit_together([clone(template).set_params(random_state=s) for s in seeds], X)
    return alone, together


def test_members_trained_together_are_the_models_trained_alone():
    # Early stopping with a short patience: the members stop at different epochs.
    template = VAEEstimator(3, hidden_layer_sizes=(16, 8), n_iter_no_change=3, tol=1e-3)
    X = _table()
    spy = mock.patch.object(
        EnsembleTrainer, "run", autospec=True, side_effect=EnsembleTrainer.run
    )
    judged = []  # the members' epochs are judged in one batched validation pass
    batched = EnsembleTrainer.validation_scores

    def recorded(self):
        judged.append(scores := batched(self))
        return scores

    with spy as run, mock.patch.object(EnsembleTrainer, "validation_scores", recorded):
        alone, together = _fit_both(template, X)
    assert run.call_count == 1  # one computation for the three
    assert judged and all(scores is not None for scores in judged)
    assert len({m.n_iter_ for m in together}) > 1
    for a, b in zip(alone, together, strict=True):
        assert a.n_iter_ == b.n_iter_ and a.optimizer_.n_steps == b.optimizer_.n_steps
        np.testing.assert_allclose(b.loss_curve_, a.loss_curve_, rtol=1e-6)
        np.testing.assert_allclose(b.validation_scores_, a.validation_scores_, rtol=1e-6)
        assert b.best_validation_score_ == pytest.approx(a.best_validation_score_, rel=1e-6)
        pairs = zip(a.module_.state_dict().items(), b.module_.state_dict().values(), strict=True)
        for (name, p), q in pairs:
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
        moments = zip(a.optimizer_.state.values(), b.optimizer_.state.values(), strict=True)
        for ours, theirs in moments:
            torch.testing.assert_close(theirs["exp_avg"], ours["exp_avg"], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(b.score_samples(X[:20]), a.score_samples(X[:20]), rtol=1e-5)


def test_members_own_their_weights_after_training_together():
    alone, together = _fit_both(VAEEstimator(2, hidden_layer_sizes=(8,), max_iter=3), _table())
    storages = {p.untyped_storage().data_ptr() for m in together for p in m.module_.parameters()}
    assert len(storages) == 2 * len(together)  # each its own two flat buffers, no stack left
    first = together[0]
    weight = first.module_.decoder[0].weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        together[1].partial_fit(_table(seed=1))  # training one member leaves the others
    torch.testing.assert_close(first.module_.decoder[0].weight.detach(), weight, rtol=0, atol=0)


def test_models_that_cannot_share_a_computation_are_fitted_one_after_another():
    X = _table()
    models = [
        VAEEstimator(2, hidden_layer_sizes=(8,), max_iter=3, random_state=0),
        VAEEstimator(2, hidden_layer_sizes=(6,), max_iter=3, random_state=0),
    ]
    with mock.patch.object(EnsembleTrainer, "run") as run, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = fit_together(models, X)
    assert run.call_count == 0
    assert [m.module_.hidden_layer_sizes for m in fitted] == [(8,), (6,)]


def test_a_diverging_member_is_a_clear_error():
    params = dict(hidden_layer_sizes=(8,), max_iter=3, learning_rate_init=1e20)
    models = [VAEEstimator(2, random_state=s, **params) for s in (0, 1)]
    with pytest.raises(ValueError, match="training loss became nan at epoch 1"):
        fit_together(models, _table())
