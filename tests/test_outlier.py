"""VAEOutlierDetector: the threshold, predict, per-feature terms, trimming, persistence."""

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import norm, poisson
from sklearn.base import is_outlier_detector
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import InvalidParameterError

import skvae._outlier
from skvae import VAEOutlierDetector
from skvae._module import VAEModule
from skvae._outlier import TRIM_WARMUP_STEPS, TrimmedTrainer, per_feature_log_prob
from skvae._trainer import TrainingConfig

# Small models: the tests are about the detector's rules, not about how well it trains.
SMALL_MODEL = dict(hidden_layer_sizes=(16,), random_state=0)
SMALL = dict(max_iter=40, **SMALL_MODEL)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _mixture(n, seed, outlier_share=0.1):
    """Rows near a 2-D plane in 6-D, and a share of rows far off it; labels 1 = outlier."""
    rng = np.random.default_rng(seed)
    W = np.random.default_rng(99).standard_normal((2, 6))
    n_out = round(outlier_share * n)
    inliers = rng.standard_normal((n - n_out, 2)) @ W + 0.1 * rng.standard_normal((n - n_out, 6))
    outliers = rng.uniform(-6, 6, size=(n_out, 6))
    X = np.vstack([inliers, outliers])
    y = np.r_[np.zeros(n - n_out), np.ones(n_out)]
    order = rng.permutation(n)
    return X[order], y[order]


@pytest.fixture(scope="module")
def fitted():
    """A detector whose threshold is set on all its training rows (novelty=False)."""
    X, _ = _mixture(300, seed=0)
    return VAEOutlierDetector(contamination=0.1, novelty=False, **SMALL).fit(X), X


def test_is_an_outlier_detector_with_the_contamination_constraint():
    detector = VAEOutlierDetector()
    assert is_outlier_detector(detector)
    assert detector.__sklearn_tags__().estimator_type == "outlier_detector"
    assert detector.get_params()["contamination"] == "auto"


def test_decision_function_is_score_samples_minus_offset_and_predict_its_sign(fitted):
    detector, X = fitted
    scores = detector.score_samples(X)
    decision = detector.decision_function(X)
    np.testing.assert_allclose(decision, scores - detector.offset_, rtol=0, atol=1e-12)
    labels = detector.predict(X)
    assert labels.dtype.kind == "i" and set(np.unique(labels)) == {-1, 1}
    np.testing.assert_array_equal(labels, np.where(decision < 0, -1, 1))


def test_offset_is_the_contamination_quantile_of_the_fit_rows_scores(fitted):
    detector, X = fitted
    scores = detector.score_samples(X)
    # The 10% quantile by its definition: between the 30th and 31st lowest of 300 scores.
    lowest = np.sort(scores)
    assert lowest[29] < detector.offset_ <= lowest[30]
    assert np.sum(detector.predict(X) == -1) == 30


def test_fit_predict_flags_the_share_asked_for_and_equals_fit_then_predict():
    X, _ = _mixture(200, seed=1)
    detector = VAEOutlierDetector(contamination=0.05, novelty=False, **SMALL)
    labels = detector.fit_predict(X)
    assert np.sum(labels == -1) == 10
    np.testing.assert_array_equal(labels, detector.fit(X).predict(X))


def test_auto_is_tukeys_fence_on_the_fit_rows_scores():
    X, _ = _mixture(300, seed=0)
    detector = VAEOutlierDetector(novelty=False, **SMALL).fit(X)
    scores = detector.score_samples(X)
    lowest = np.sort(scores)
    # The quartiles by hand (linear interpolation between order statistics, 299 gaps).
    q1 = lowest[74] + 0.75 * (lowest[75] - lowest[74])
    q3 = lowest[224] + 0.25 * (lowest[225] - lowest[224])
    assert math.isclose(detector.offset_, q1 - 1.5 * (q3 - q1), rel_tol=0, abs_tol=1e-9)


def _held_out_rows(n_samples, random_state=0, validation_fraction=0.1):
    """The rows fit holds out: BaseVAE's second seed drawn from random_state splits them."""
    split_seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max, size=4)[1])
    _, held_out = train_test_split(
        np.arange(n_samples), test_size=validation_fraction, random_state=split_seed
    )
    return held_out


@pytest.mark.parametrize("early_stopping", [True, False])
def test_novelty_threshold_is_the_quantile_of_the_seen_rows_moved_to_the_held_out_scale(
    early_stopping,
):
    X, _ = _mixture(300, seed=0)
    detector = VAEOutlierDetector(contamination=0.1, early_stopping=early_stopping, **SMALL)
    detector.fit(X)
    held_out = _held_out_rows(300)
    scores = detector.score_samples(X)
    held, seen = scores[held_out], np.delete(scores, held_out)
    # First quartiles by hand (linear between order statistics): 30 held-out, 270 seen.
    q1_held = np.sort(held)[7] + 0.25 * (np.sort(held)[8] - np.sort(held)[7])
    q1_seen = np.sort(seen)[67] + 0.25 * (np.sort(seen)[68] - np.sort(seen)[67])
    # The seen rows' scores moved by the difference of the two, with the held-out rows'
    # own: 300 scores, whose k-th lowest for k = 0.1 * 301 = 30.1 is the threshold.
    lowest = np.sort(np.r_[seen + q1_held - q1_seen, held])
    assert np.isclose(detector.offset_, lowest[29] + 0.1 * (lowest[30] - lowest[29]))
    # Without early stopping the rows serve the threshold alone.
    assert (detector.validation_scores_ is None) != early_stopping
    # The training rows are likelier to the model than the held-out ones: fewer flagged.
    assert np.mean(detector.predict(np.delete(X, held_out, axis=0)) == -1) < 0.1


def test_shifted_scores_put_the_seen_rows_on_the_held_out_rows_scale():
    rng = np.random.default_rng(0)
    new_rows = rng.normal(-10.0, 2.0, size=400)
    # Seen rows 3 nats likelier than new ones; the 40 held-out rows are new rows.
    scores = np.r_[new_rows[:360] + 3.0, new_rows[360:]]
    held_out = np.arange(360, 400)
    shifted = skvae._outlier.shifted_scores(scores, held_out)
    assert shifted.shape == (400,)
    np.testing.assert_array_equal(np.sort(shifted[360:]), np.sort(new_rows[360:]))
    # One common shift of the seen rows, by the difference of the first quartiles.
    gap = np.percentile(new_rows[360:], 25) - np.percentile(new_rows[:360] + 3.0, 25)
    np.testing.assert_allclose(shifted[:360], new_rows[:360] + 3.0 + gap, rtol=0, atol=1e-12)
    # The pooled 10% quantile is that of N(-10, 2) (-12.56) to within its sampling error,
    # where the seen rows alone would put it 3 nats too high.
    q = norm.ppf(0.1, loc=-10.0, scale=2.0)
    assert abs(np.percentile(shifted, 10) - q) < 0.6
    assert np.percentile(scores[:360], 10) - q > 2.0


def test_fit_predict_is_for_novelty_false_only():
    detector = VAEOutlierDetector()
    assert not hasattr(detector, "fit_predict")
    with pytest.raises(AttributeError, match="fit_predict") as excinfo:
        detector.fit_predict(np.zeros((20, 2)))
    assert "novelty=False to label the rows" in str(excinfo.value.__cause__)
    assert hasattr(VAEOutlierDetector(novelty=False), "fit_predict")


def test_flagged_share_of_held_out_rows_of_a_known_mixture_is_near_contamination():
    X, _ = _mixture(1000, seed=2)
    X_new, y_new = _mixture(1000, seed=3)
    detector = VAEOutlierDetector(contamination=0.1, **SMALL_MODEL)
    flagged = detector.fit(X).predict(X_new) == -1
    assert abs(flagged.mean() - 0.1) <= 0.02
    # The flagged rows are mostly the far-off ones, and the far-off rows are flagged.
    assert y_new[flagged].mean() >= 0.85 and flagged[y_new == 1].mean() >= 0.9


def test_trimming_keeps_the_model_from_explaining_its_training_outliers():
    # Training rows with 10% outliers: without trimming the model spends likelihood on
    # them; with it, they stay far less likely than the inliers.
    X, y = _mixture(400, seed=4)
    gaps = {}
    for fraction in (1.0, 0.8):
        detector = VAEOutlierDetector(support_fraction=fraction, **SMALL_MODEL).fit(X)
        scores = detector.score_samples(X)
        gaps[fraction] = scores[y == 0].mean() - scores[y == 1].mean()
    assert gaps[0.8] > gaps[1.0]


def test_reweighting_refits_on_the_rows_the_first_model_finds_likeliest():
    X, y = _mixture(400, seed=4)
    detector = VAEOutlierDetector(reweight=True, **SMALL_MODEL)
    first = detector._start_fit(X, incremental=False).trainer
    first.run(first.config.max_iter)
    second = detector._second_stage(first)
    kept = second.train_rows.numpy()
    assert len(kept) == math.ceil(0.8 * len(first.train_rows))
    assert set(kept) <= set(first.train_rows.numpy())
    # The far-off rows are the least likely: almost none is kept.
    assert y[kept].sum() <= 2
    # A new model, not the first one trained on.
    assert second.module is not first.module and second.validation is first.validation


def test_reweighting_leaves_the_outliers_less_likely_than_trimming_alone():
    X, y = _mixture(400, seed=5, outlier_share=0.15)
    gaps = {}
    for reweight in (False, True):
        detector = VAEOutlierDetector(reweight=reweight, **SMALL_MODEL).fit(X)
        scores = detector.score_samples(X)
        gaps[reweight] = scores[y == 0].mean() - scores[y == 1].mean()
    assert gaps[True] > gaps[False]


def _trainer(n_rows=20, support_fraction=0.75):
    torch.manual_seed(0)
    from skvae._likelihoods import build_likelihood

    likelihood = build_likelihood(3, {"name": "gaussian", "covariance_type": "diag"})
    module = VAEModule(3, 2, (8,), "relu", likelihood)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.0)
    data = {"x": torch.randn(n_rows, 3)}
    config = TrainingConfig(batch_size=n_rows, max_iter=1, missing=False)
    trainer = TrimmedTrainer(
        module, optimizer, config, torch.Generator().manual_seed(0), torch.device("cpu"), data,
        support_fraction=support_fraction, warmup_epochs=0,
    )  # fmt: skip
    trainer.threads = None
    return trainer, module, data


def test_a_trimmed_step_follows_the_gradient_of_the_likeliest_rows_only():
    trainer, module, data = _trainer()
    trainer._trimming = True
    batch, eps = {"x": data["x"], "mask": None}, torch.randn(20, 2)
    trainer.train_step(batch, eps, 1.0)  # lr 0: the gradients stay, the weights do not move
    got = [p.grad.clone() for p in module.parameters()]
    with torch.no_grad():
        output = module.loss(batch, eps)
        elbo = output.reconstruction - output.kl
    kept = torch.argsort(elbo, descending=True)[:15]  # ceil(0.75 * 20)
    module.zero_grad()
    module.loss({"x": data["x"][kept], "mask": None}, eps[kept]).loss.backward()
    for g, p in zip(got, module.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_trimming_starts_after_the_warm_up_steps(monkeypatch):
    X, _ = _mixture(400, seed=5)
    seen = []
    original = TrimmedTrainer.run_epoch

    def spy(self, epoch):
        loss = original(self, epoch)
        seen.append(self._trimming)
        return loss

    monkeypatch.setattr(TrimmedTrainer, "run_epoch", spy)
    VAEOutlierDetector(hidden_layer_sizes=(8,), max_iter=60, random_state=0).fit(X)
    steps_per_epoch = math.ceil(360 / 36)  # 10% of 400 held out; batches of a tenth
    warmup = math.ceil(TRIM_WARMUP_STEPS / steps_per_epoch)
    assert seen[:warmup] == [False] * warmup and all(seen[warmup:]) and len(seen) > warmup


def test_auto_budget_is_the_detectors_step_budget_without_a_convergence_warning(monkeypatch):
    # 180 training rows in batches of 32: 6 steps per epoch, 300 steps in 50 epochs; the
    # patience is VAEEstimator's, 500 steps in 84 epochs.
    assert VAEOutlierDetector()._budget(180) == (32, 50, 84)
    monkeypatch.setattr(skvae._outlier, "AUTO_MAX_STEPS", 60)
    X, _ = _mixture(200, seed=6)
    detector = VAEOutlierDetector(hidden_layer_sizes=(8,), random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector.fit(X)
    assert detector.max_iter_ == detector.n_iter_ == 10
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        detector.set_params(max_iter=5).fit(X)


def _posterior_mean_outputs(detector, X):
    """The rescaled rows and the decoder's output at their posterior means, in float64."""
    module = copy.deepcopy(detector.module_).double()
    x = torch.tensor((X - module.likelihood.loc) / module.likelihood.scale)
    with torch.no_grad():
        return x, module.decode(module.encode(x).mean)


def test_score_features_are_gaussian_log_densities_at_the_decoded_posterior_mean(fitted):
    detector, X = fitted
    terms = detector.score_features(X[:25])
    _, out = _posterior_mean_outputs(detector, X[:25])
    likelihood = detector.module_.likelihood
    mean = out.numpy() * likelihood.scale + likelihood.loc
    expected = norm.logpdf(X[:25], loc=mean, scale=np.sqrt(detector.noise_variance_))
    # The noise variances were float32 in training: 1e-8 of relative rounding.
    np.testing.assert_allclose(terms, expected, rtol=1e-6)


def test_score_features_sum_to_the_reconstruction_term(fitted):
    detector, X = fitted
    terms = detector.score_features(X[:10])
    x, out = _posterior_mean_outputs(detector, X[:10])
    likelihood = copy.deepcopy(detector.module_.likelihood).double()
    with torch.no_grad():
        reconstruction = likelihood.log_prob(x, out).numpy()
    log_det = -np.log(likelihood.scale).sum()
    np.testing.assert_allclose(terms.sum(axis=1), reconstruction + log_det, rtol=1e-10)


def test_score_features_of_a_mixed_likelihood_match_each_familys_reference():
    rng = np.random.default_rng(7)
    X = np.column_stack(
        [rng.normal(5, 2, 200), rng.integers(0, 2, 200), rng.poisson(3, 200)]
    ).astype(float)
    likelihood = {"gaussian": [0], "bernoulli": [1], "poisson": [2]}
    detector = VAEOutlierDetector(likelihood=likelihood, **SMALL).fit(X)
    terms = detector.score_features(X[:20])
    _, out = _posterior_mean_outputs(detector, X[:20])
    out = out.numpy()
    scale, loc = detector.module_.likelihood.scale, detector.module_.likelihood.loc
    gaussian = norm.logpdf(
        X[:20, 0], out[:, 0] * scale[0] + loc[0], detector.noise_variance_[0] ** 0.5
    )
    bernoulli = torch.distributions.Bernoulli(logits=torch.tensor(out[:, 1]))
    counts = poisson.logpmf(X[:20, 2], np.exp(out[:, 2]))
    np.testing.assert_allclose(terms[:, 0], gaussian, rtol=1e-6)  # float32 variances
    np.testing.assert_allclose(terms[:, 1], bernoulli.log_prob(torch.tensor(X[:20, 1])), rtol=1e-9)
    np.testing.assert_allclose(terms[:, 2], counts, rtol=1e-9)


def test_score_features_mark_missing_entries_nan_and_keep_the_others(fitted):
    detector, X = fitted
    X_missing = X[:5].copy()
    X_missing[0, 2] = np.nan
    terms = detector.score_features(X_missing)
    assert np.isnan(terms[0, 2]) and np.isfinite(np.delete(terms[0], 2)).all()
    np.testing.assert_allclose(terms[1:], detector.score_features(X[1:5]), rtol=1e-12)


def test_per_feature_terms_of_a_flagged_row_point_at_the_corrupted_feature(fitted):
    detector, X = fitted
    inlier = X[np.argmax(detector.decision_function(X))].copy()
    corrupted = inlier.copy()
    corrupted[4] += 20.0  # far off in one feature only
    assert detector.predict(corrupted[None])[0] == -1
    assert np.argmin(detector.score_features(corrupted[None])[0]) == 4


def test_per_feature_log_prob_works_for_categorical_columns():
    from skvae._likelihoods import build_likelihood

    likelihood = build_likelihood(2, {"name": "categorical", "n_categories": [3, 2]})
    x = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    out = torch.randn(2, 5)
    terms = per_feature_log_prob(likelihood, x, out)
    first = torch.log_softmax(out[:, :3], -1)[torch.arange(2), x[:, 0].long()]
    second = torch.log_softmax(out[:, 3:], -1)[torch.arange(2), x[:, 1].long()]
    torch.testing.assert_close(terms, torch.stack([first, second], 1))


def test_score_features_refuse_a_likelihood_that_is_not_a_product_over_features():
    counts = np.random.default_rng(8).poisson(4.0, size=(100, 5)).astype(float)
    detector = VAEOutlierDetector(likelihood="multinomial", **SMALL).fit(counts)
    with pytest.raises(ValueError, match="'multinomial' likelihood is not a product"):
        detector.score_features(counts[:3])


def test_pickling_keeps_offset_and_predictions(fitted):
    detector, X = fitted
    loaded = pickle.loads(pickle.dumps(detector))
    assert loaded.offset_ == detector.offset_
    np.testing.assert_array_equal(loaded.decision_function(X), detector.decision_function(X))
    np.testing.assert_array_equal(loaded.score_features(X[:3]), detector.score_features(X[:3]))


@pytest.mark.parametrize("contamination", [0.0, 0.6, "half", -0.1])
def test_contamination_outside_0_to_half_is_a_clear_error(contamination):
    X, _ = _mixture(100, seed=0)
    with pytest.raises(InvalidParameterError, match="contamination"):
        VAEOutlierDetector(contamination=contamination, **SMALL).fit(X)


def test_unfitted_and_misshaped_input_are_clear_errors(fitted):
    with pytest.raises(NotFittedError):
        VAEOutlierDetector().predict(np.zeros((2, 6)))
    detector, _ = fitted
    with pytest.raises(ValueError, match="X has 4 features"):
        detector.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="X has 4 features"):
        detector.score_features(np.zeros((2, 4)))
    with pytest.raises(InvalidParameterError, match="support_fraction"):
        VAEOutlierDetector(support_fraction=1.5).fit(np.zeros((20, 6)))
