"""skvae.plotting: each display draws what the estimator computes, and says what is wrong."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skvae import VAEClusterer, VAEEstimator, VAEImputer, VAEOutlierDetector
from skvae.plotting import (
    ClustersDisplay,
    LatentSpaceDisplay,
    LatentTraversalDisplay,
    LossCurveDisplay,
    MarginalsDisplay,
    SamplesDisplay,
)

plt = pytest.importorskip("matplotlib.pyplot")

# Small models with a loose tolerance: they converge (no ConvergenceWarning) in a second.
SMALL = {"hidden_layer_sizes": (32,), "tol": 0.1, "random_state": 0}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


@pytest.fixture(scope="module")
def vae(digits):
    return VAEEstimator(n_components=3, **SMALL).fit(digits[0])


@pytest.fixture(scope="module")
def bernoulli_vae(digits):
    X_binary = (digits[0] > 7).astype(float)
    return VAEEstimator(likelihood="bernoulli", **SMALL).fit(X_binary), X_binary


@pytest.fixture(scope="module")
def detector(digits):
    # Six columns: quick to fit, six marginals, and images of 2 x 3 pixels.
    return VAEOutlierDetector(**SMALL).fit(digits[0][:, 20:26])


@pytest.fixture(scope="module")
def pipe(digits):
    # Grey levels 0 to 16 scaled to [0, 1] for the continuous Bernoulli, and back.
    vae = VAEEstimator(likelihood="continuous_bernoulli", **{**SMALL, "tol": 1.0})
    return make_pipeline(MinMaxScaler(), vae).fit(digits[0])


# ---------------------------------------------------------------- matplotlib is optional


def test_skvae_imports_without_matplotlib():
    code = (
        "import sys\n"
        "import skvae\n"
        "assert 'matplotlib' not in sys.modules, 'import skvae imported matplotlib'\n"
        "sys.modules['matplotlib'] = None\n"
        "import skvae.plotting\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _draw_calls(vae, X):
    return {
        "LatentSpaceDisplay.from_estimator": lambda: LatentSpaceDisplay.from_estimator(vae, X),
        "LatentSpaceDisplay.plot": lambda: LatentSpaceDisplay(latent=np.zeros((3, 2))).plot(),
        "LatentTraversalDisplay.from_estimator": lambda: LatentTraversalDisplay.from_estimator(
            vae
        ),
        "LossCurveDisplay.from_estimator": lambda: LossCurveDisplay.from_estimator(vae),
        "LossCurveDisplay.plot": lambda: LossCurveDisplay(loss_curve=[2.0, 1.0]).plot(),
        "SamplesDisplay.from_estimator": lambda: SamplesDisplay.from_estimator(vae, X, (8, 8)),
        "MarginalsDisplay.from_estimator": lambda: MarginalsDisplay.from_estimator(vae, X),
        "MarginalsDisplay.from_data": lambda: MarginalsDisplay.from_data(X, X),
        "MarginalsDisplay.plot": lambda: MarginalsDisplay(real=X, synthetic=X).plot(),
    }


def test_without_matplotlib_every_drawing_call_names_the_extra(vae, digits, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    for caller, call in _draw_calls(vae, digits[0]).items():
        with pytest.raises(ImportError, match=r'pip install "skvae\[plot\]"') as info:
            call()
        assert caller in str(info.value)


# ---------------------------------------------------------------- fitted, and a VAE


@pytest.mark.parametrize("display", [LatentSpaceDisplay, LatentTraversalDisplay, SamplesDisplay])
def test_unfitted_estimator_raises_not_fitted(display, digits):
    args = {
        LatentSpaceDisplay: (digits[0],),
        LatentTraversalDisplay: (),
        SamplesDisplay: (digits[0], (8, 8)),
    }[display]
    with pytest.raises(NotFittedError):
        display.from_estimator(VAEEstimator(), *args)
    with pytest.raises(NotFittedError):
        display.from_estimator(make_pipeline(MinMaxScaler(), VAEEstimator()), *args)


def test_loss_curve_of_unfitted_estimator_raises_not_fitted():
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(VAEEstimator())


def test_an_estimator_that_is_not_a_vae_is_refused(digits):
    scaler = MinMaxScaler().fit(digits[0])
    with pytest.raises(TypeError, match="a VAEClusterer or a Pipeline whose last step"):
        LatentSpaceDisplay.from_estimator(scaler, digits[0])


# ---------------------------------------------------------------- every model with what is drawn


def test_loss_curves_of_an_outlier_detector_are_its_fitted_curves(detector):
    display = LossCurveDisplay.from_estimator(detector)
    train, val = display.lines_
    np.testing.assert_allclose(train.get_ydata(), detector.loss_curve_)
    np.testing.assert_allclose(val.get_ydata(), -np.asarray(detector.validation_scores_))
    scores = np.asarray(detector.validation_scores_)
    kept = np.flatnonzero(scores == detector.best_validation_score_)[-1]
    assert display.best_line_.get_xdata()[0] == kept + 1


def test_loss_curves_of_a_pipeline_ending_in_an_outlier_detector(digits):
    pipe = make_pipeline(MinMaxScaler(), VAEOutlierDetector(**SMALL)).fit(digits[0][:, 20:26])
    display = LossCurveDisplay.from_estimator(pipe)
    np.testing.assert_allclose(display.lines_[0].get_ydata(), pipe[-1].loss_curve_)
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(VAEOutlierDetector())


def test_marginals_of_an_outlier_detector_are_beside_its_draws(detector, digits):
    X = digits[0][:, 20:26]
    display = MarginalsDisplay.from_estimator(detector, X, n_samples=40, random_state=2)
    np.testing.assert_array_equal(display.synthetic, detector.sample(40, random_state=2))
    assert len(display.artists_) == 6


def test_samples_of_an_outlier_detector_are_its_draws(detector, digits):
    X = digits[0][:, 20:26]
    display = SamplesDisplay.from_estimator(
        detector, X, (2, 3), n_samples=4, kind="sample", random_state=5
    )
    rng = np.random.RandomState(5)
    np.testing.assert_array_equal(display.data, X[rng.choice(len(X), 4, replace=False)])
    np.testing.assert_array_equal(display.generated, detector.sample(4, random_state=rng))


def test_decoder_means_of_an_outlier_detector_are_refused_with_the_way_out(detector, digits):
    # Without inverse_transform there are no decoder means; its draws are there.
    with pytest.raises(TypeError, match="inverse_transform.*kind='sample'"):
        SamplesDisplay.from_estimator(detector, digits[0][:, 20:26], (2, 3))


def test_displays_of_what_an_outlier_detector_lacks_name_it(detector, digits):
    lacks = "of the model, which VAEOutlierDetector does not have"
    with pytest.raises(TypeError, match=f"transform {lacks}"):
        LatentSpaceDisplay.from_estimator(detector, digits[0][:, 20:26])
    with pytest.raises(TypeError, match=f"inverse_transform {lacks}"):
        LatentTraversalDisplay.from_estimator(detector)


def test_an_imputer_is_refused_with_a_pointer_to_its_estimators(digits):
    X = digits[0][:200, 20:26].copy()
    X[::5, 0] = np.nan
    imputer = VAEImputer(VAEEstimator(**SMALL), n_estimators=1, random_state=0).fit(X)
    with pytest.raises(TypeError, match="models are its estimators_: pass one of them"):
        LossCurveDisplay.from_estimator(imputer)
    display = LossCurveDisplay.from_estimator(imputer.estimators_[0])
    np.testing.assert_allclose(display.lines_[0].get_ydata(), imputer.estimators_[0].loss_curve_)


# ---------------------------------------------------------------- LatentSpaceDisplay


@pytest.mark.parametrize("dims", [(0, 1), (2, 0)])
def test_latent_space_draws_the_posterior_means(vae, digits, dims):
    X, y = digits
    display = LatentSpaceDisplay.from_estimator(vae, X, y, dims=dims)
    expected = vae.transform(X)[:, list(dims)]
    np.testing.assert_allclose(display.scatter_.get_offsets(), expected)
    assert display.ax_.get_xlabel().startswith(f"latent dimension {dims[0]}")
    assert display.ax_.get_ylabel().startswith(f"latent dimension {dims[1]}")


def test_latent_space_categories_get_one_colour_each_and_a_legend(vae, digits):
    X, y = digits
    display = LatentSpaceDisplay.from_estimator(vae, X, y)
    colors = display.scatter_.get_facecolors()
    assert len(colors) == len(y)
    by_class = [np.unique(colors[y == label], axis=0) for label in range(10)]
    assert all(len(c) == 1 for c in by_class)  # one colour per class ...
    assert len(np.unique(np.vstack(by_class), axis=0)) == 10  # ... all different
    assert [t.get_text() for t in display.legend_.get_texts()] == [str(c) for c in range(10)]
    assert display.colorbar_ is None


def test_latent_space_string_labels_are_categories(vae, digits):
    X, y = digits
    names = np.array(["even", "odd"])[y % 2]
    display = LatentSpaceDisplay.from_estimator(vae, X, names)
    assert [t.get_text() for t in display.legend_.get_texts()] == ["even", "odd"]


def test_latent_space_continuous_y_gets_a_colorbar(vae, digits):
    X, _ = digits
    y = np.random.default_rng(0).normal(size=len(X))
    display = LatentSpaceDisplay.from_estimator(vae, X, y)
    assert display.legend_ is None
    assert display.colorbar_ is not None
    np.testing.assert_allclose(display.scatter_.get_array(), y)


def test_latent_space_without_y_has_no_legend_nor_colorbar(vae, digits):
    display = LatentSpaceDisplay.from_estimator(vae, digits[0])
    assert display.legend_ is None and display.colorbar_ is None
    assert display.scatter_.get_offsets().shape == (len(digits[0]), 2)


def test_latent_space_draws_into_the_given_axes(vae, digits):
    fig, (left, right) = plt.subplots(1, 2)
    display = LatentSpaceDisplay.from_estimator(vae, digits[0], ax=right)
    assert display.ax_ is right and display.figure_ is fig
    assert display.scatter_ in right.collections and not left.collections


def test_latent_space_one_dimension_is_a_strip_plot_by_class(vae, digits):
    X, y = digits
    display = LatentSpaceDisplay.from_estimator(vae, X, y, dims=2)
    offsets = np.asarray(display.scatter_.get_offsets())
    np.testing.assert_allclose(offsets[:, 0], vae.transform(X)[:, 2])
    # Each class in its own band: jitter of at most 0.25 around the class's row.
    assert np.all(np.abs(offsets[:, 1] - y) <= 0.25)


def test_one_component_model_defaults_to_a_strip_plot(digits):
    X, _ = digits
    one = VAEEstimator(n_components=1, **SMALL).fit(X)
    display = LatentSpaceDisplay.from_estimator(one, X)
    offsets = np.asarray(display.scatter_.get_offsets())
    np.testing.assert_allclose(offsets[:, 0], one.transform(X)[:, 0])
    with pytest.raises(ValueError, match="n_components=1"):
        LatentSpaceDisplay.from_estimator(one, X, dims=(0, 1))


@pytest.mark.parametrize(
    "dims, message",
    [
        ((0, 3), "out of range: the model has n_components=3"),
        (-1, "out of range"),
        ((0, 1, 2), "1 or 2 latent dimensions"),
        ((1, 1), "repeats"),
        ((0.0, 1.0), "int or a sequence of ints"),
    ],
)
def test_latent_space_bad_dims(vae, digits, dims, message):
    with pytest.raises(ValueError, match=message):
        LatentSpaceDisplay.from_estimator(vae, digits[0], dims=dims)


def test_latent_space_y_of_the_wrong_length(vae, digits):
    X, y = digits
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LatentSpaceDisplay.from_estimator(vae, X, y[:-1])


# ---------------------------------------------------------------- LatentTraversalDisplay


def _sweep(base, dims, values):
    """The latent points of a traversal, built point by point."""
    points = []
    for dim in dims:
        for value in values:
            z = np.array(base, dtype=float)
            z[dim] = value
            points.append(z)
    return np.array(points)


def test_traversal_images_are_the_decoded_sweep(vae, digits):
    base = vae.transform(digits[0][:1])[0]
    dims, values = (2, 0), [-1.0, 0.5, 2.0]
    display = LatentTraversalDisplay.from_estimator(
        vae, dims=dims, values=values, base=base, image_shape=(8, 8)
    )
    expected = vae.inverse_transform(_sweep(base, dims, values)).reshape(2, 3, 64)
    np.testing.assert_allclose(display.decoded, expected)
    for i in range(2):
        row = np.asarray(display.images_[i].get_array())
        assert row.shape == (8, 3 * 8 + 2)  # three images, one blank column between
        for j in range(3):
            block = row[:, j * 9 : j * 9 + 8]
            np.testing.assert_allclose(block, expected[i, j].reshape(8, 8))
        assert np.all(np.isnan(row[:, [8, 17]]))
    assert display.axes_[0].get_ylabel() == "dim 2"


def test_traversal_defaults_sweep_every_dimension_from_the_prior_mean(vae):
    display = LatentTraversalDisplay.from_estimator(vae, image_shape=(8, 8))
    values = np.linspace(-2.5, 2.5, 7)
    assert display.dims == (0, 1, 2)
    np.testing.assert_allclose(display.values, values)
    np.testing.assert_array_equal(display.base, np.zeros(3))
    expected = vae.inverse_transform(_sweep(np.zeros(3), (0, 1, 2), values))
    np.testing.assert_allclose(display.decoded.reshape(-1, 64), expected)
    assert len(display.axes_) == 3 and display.bounding_ax_ is None


def test_traversal_default_dims_are_capped_at_the_ten_most_used(digits):
    wide = VAEEstimator(n_components=12, **SMALL).fit(digits[0])
    display = LatentTraversalDisplay.from_estimator(wide, values=[0.0])
    most_used = np.argsort(wide.kl_per_component_)[::-1][:10]
    assert display.dims == tuple(sorted(most_used))


def test_traversal_without_image_shape_draws_lines(vae):
    display = LatentTraversalDisplay.from_estimator(vae, dims=[1], values=[-2.0, 2.0])
    expected = vae.inverse_transform(_sweep(np.zeros(3), [1], [-2.0, 2.0]))
    assert display.images_ is None and display.lines_.shape == (1, 2)
    for j in range(2):
        np.testing.assert_allclose(display.lines_[0, j].get_ydata(), expected[j])
        np.testing.assert_array_equal(display.lines_[0, j].get_xdata(), np.arange(64))
    assert [t.get_text() for t in display.legend_.get_texts()] == ["-2", "2"]


def test_traversal_through_a_pipeline_is_in_the_units_of_its_input(pipe):
    display = LatentTraversalDisplay.from_estimator(pipe, values=[0.0, 1.0], image_shape=(8, 8))
    expected = pipe.inverse_transform(_sweep(np.zeros(2), (0, 1), [0.0, 1.0]))
    np.testing.assert_allclose(display.decoded.reshape(-1, 64), expected)
    assert display.decoded.max() > 1  # back in grey levels 0 to 16, not [0, 1]


def test_traversal_splits_a_single_axes_into_rows(vae):
    fig, ax = plt.subplots()
    display = LatentTraversalDisplay.from_estimator(vae, dims=(0, 1), ax=ax, image_shape=(8, 8))
    assert display.bounding_ax_ is ax and not ax.axison
    assert len(display.axes_) == 2 and all(a.figure is fig for a in display.axes_)
    with pytest.raises(ValueError, match="already split"):
        LatentTraversalDisplay.from_estimator(vae, ax=ax)


def test_traversal_draws_into_the_axes_given(vae):
    fig, axes = plt.subplots(2, 1)
    display = LatentTraversalDisplay.from_estimator(vae, dims=(0, 2), ax=axes)
    assert list(display.axes_) == list(axes)
    assert all(line in axes[1].lines for line in display.lines_[1])
    with pytest.raises(ValueError, match="ax holds 2 Axes, but there are 3"):
        LatentTraversalDisplay.from_estimator(vae, ax=axes)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (8, 9)}, "holds 72 pixels, but the model has 64 features"),
        ({"image_shape": (64,)}, r"\(height, width\)"),
        ({"dims": [3]}, "out of range: the model has n_components=3"),
        ({"base": np.zeros(2)}, r"base must be one latent point of shape \(3,\)"),
        ({"base": [0.0, np.nan, 0.0]}, "NaN"),
        ({"values": []}, "non-empty"),
    ],
)
def test_traversal_bad_arguments(vae, kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatentTraversalDisplay.from_estimator(vae, **kwargs)


# ---------------------------------------------------------------- LossCurveDisplay


def test_loss_curves_are_the_fitted_curves(vae):
    display = LossCurveDisplay.from_estimator(vae)
    train, val = display.lines_
    epochs = np.arange(1, vae.n_iter_ + 1)
    np.testing.assert_array_equal(train.get_xdata(), epochs)
    np.testing.assert_allclose(train.get_ydata(), vae.loss_curve_)
    np.testing.assert_allclose(val.get_ydata(), -np.asarray(vae.validation_scores_))
    best_epoch = int(np.argmax(vae.validation_scores_)) + 1  # no warm-up here
    assert display.best_line_.get_xdata()[0] == best_epoch


def test_loss_curve_without_early_stopping_is_the_loss_alone(digits):
    # A loose tolerance on the training loss: the curve is what is drawn, not how low it gets.
    vae = VAEEstimator(early_stopping=False, **{**SMALL, "tol": 1.0}).fit(digits[0])
    assert vae.validation_scores_ is None
    fig, ax = plt.subplots()
    display = LossCurveDisplay.from_estimator(vae, ax=ax)
    assert display.ax_ is ax and len(ax.lines) == 1
    assert len(display.lines_) == 1 and display.best_line_ is None
    np.testing.assert_allclose(display.lines_[0].get_ydata(), vae.loss_curve_)


def test_loss_curve_validation_shorter_than_training_is_aligned_right():
    display = LossCurveDisplay(
        loss_curve=[5.0, 4.0, 3.0, 2.0], validation_scores=[-3.5, -2.5], best_validation_score=-2.5
    ).plot()
    np.testing.assert_array_equal(display.lines_[1].get_xdata(), [3, 4])
    assert display.best_line_.get_xdata()[0] == 4


# ---------------------------------------------------------------- SamplesDisplay


def test_samples_mean_are_decoder_means_at_prior_draws(vae, digits):
    X, _ = digits
    display = SamplesDisplay.from_estimator(vae, X, (8, 8), n_samples=5, random_state=3)
    rng = np.random.RandomState(3)
    rows = rng.choice(len(X), 5, replace=False)
    Z = rng.standard_normal((5, 3))
    np.testing.assert_array_equal(display.data, X[rows])
    np.testing.assert_allclose(display.generated, vae.inverse_transform(Z))
    # 5 images in 3 columns: 2 rows of 8 pixels and 3 columns, one blank pixel between.
    right = np.asarray(display.images_[1].get_array())
    assert right.shape == (17, 26)
    np.testing.assert_allclose(right[9:17, 9:17], display.generated[4].reshape(8, 8))
    assert np.all(np.isnan(right[9:17, 18:26]))  # the sixth place is empty
    left = np.asarray(display.images_[0].get_array())
    np.testing.assert_allclose(left[0:8, 0:8], X[rows[0]].reshape(8, 8))


def test_samples_draws_are_draws_of_the_model(bernoulli_vae):
    vae, X = bernoulli_vae
    display = SamplesDisplay.from_estimator(vae, X, (8, 8), kind="sample", random_state=1)
    rng = np.random.RandomState(1)
    rng.choice(len(X), 16, replace=False)
    np.testing.assert_array_equal(display.generated, vae.sample(16, random_state=rng))
    assert set(np.unique(display.generated)) <= {0.0, 1.0}
    assert "draws" in display.ax_.get_xticklabels()[1].get_text()


def test_samples_default_seed_is_the_estimators(bernoulli_vae):
    vae, X = bernoulli_vae
    first = SamplesDisplay.from_estimator(vae, X, (8, 8)).generated
    again = SamplesDisplay.from_estimator(vae, X, (8, 8)).generated
    np.testing.assert_array_equal(first, again)
    assert np.all((first > 0) & (first < 1))  # means of bernoullis: probabilities


def test_samples_through_a_pipeline_are_in_the_units_of_its_input(pipe, digits):
    X, _ = digits
    display = SamplesDisplay.from_estimator(pipe, X, (8, 8), kind="sample", random_state=0)
    rng = np.random.RandomState(0)
    rng.choice(len(X), 16, replace=False)
    draws = pipe[-1].sample(16, random_state=rng)
    np.testing.assert_allclose(display.generated, pipe[0].inverse_transform(draws))
    assert display.generated.max() > 1


def test_samples_draws_into_the_given_axes(vae, digits):
    fig, ax = plt.subplots()
    display = SamplesDisplay.from_estimator(vae, digits[0], (8, 8), ax=ax)
    assert display.ax_ is ax and list(ax.images) == display.images_


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (4, 8)}, "holds 32 pixels, but the model has 64 features"),
        ({"n_samples": 601}, "more than the 600 rows"),
        ({"n_samples": 0}, "positive int"),
        ({"kind": "median"}, "kind must be 'mean' or 'sample'"),
    ],
)
def test_samples_bad_arguments(vae, digits, kwargs, message):
    kwargs = {"image_shape": (8, 8), **kwargs}
    with pytest.raises(ValueError, match=message):
        SamplesDisplay.from_estimator(vae, digits[0], **kwargs)


def test_samples_X_of_the_wrong_width(vae, digits):
    with pytest.raises(ValueError, match="X has 63 features, but the estimator"):
        SamplesDisplay.from_estimator(vae, digits[0][:, :63], (7, 9))


# ---------------------------------------------------------------- shared Axes handling


def _bad_displays():
    return {
        "latent": LatentSpaceDisplay(latent=np.zeros(3)),
        "decoded": LatentTraversalDisplay(
            decoded=np.zeros((2, 3)), dims=(0,), values=[0], base=[0]
        ),
        "validation_scores": LossCurveDisplay(loss_curve=[2.0], validation_scores=[-2.0, -1.0]),
        "kind": SamplesDisplay(
            data=np.zeros((2, 4)), generated=np.zeros((2, 4)), image_shape=(2, 2), kind="x"
        ),
    }


@pytest.mark.parametrize("what", ["latent", "decoded", "validation_scores", "kind"])
def test_bad_data_raise_before_a_figure_is_made(what):
    plt.close("all")
    with pytest.raises(ValueError, match=what):
        _bad_displays()[what].plot()
    assert plt.get_fignums() == []


@pytest.mark.parametrize(
    "display",
    [
        LatentSpaceDisplay(latent=np.arange(6.0).reshape(3, 2)),
        LossCurveDisplay(loss_curve=[2.0, 1.0]),
        SamplesDisplay(data=np.eye(4), generated=np.eye(4), image_shape=(2, 2)),
    ],
    ids=lambda display: type(display).__name__,
)
def test_one_axes_displays_make_a_constrained_figure_or_use_the_axes_given(display):
    display.plot()
    assert display.figure_.axes == [display.ax_]
    assert display.figure_.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    fig, (left, right) = plt.subplots(1, 2)
    display.plot(ax=right)
    assert display.ax_ is right and display.figure_ is fig
    assert not left.has_data() and right.has_data()
    plt.close("all")


# ---------------------------------------------------------------- MarginalsDisplay


@pytest.fixture
def tables():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    real = pd.DataFrame(
        {
            "island": rng.choice(
                ["Biscoe", "Dream", "Torgersen", None], 300, p=[0.5, 0.3, 0.1, 0.1]
            ),
            "mass": rng.normal(4000.0, 500.0, 300),
            "year": rng.choice([2007, 2008, 2009], 300),
            "male": rng.random(300) < 0.5,
            "bill": rng.gamma(2.0, 10.0, 300),
        }
    )
    synthetic = pd.DataFrame(
        {
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], 120, p=[0.6, 0.3, 0.1]),
            "mass": rng.normal(4200.0, 400.0, 120),
            "year": rng.choice([2007, 2008, 2009], 120),
            "male": rng.random(120) < 0.3,
            "bill": rng.gamma(2.0, 12.0, 120),
        }
    )
    return real, synthetic


def test_marginals_bars_are_each_sides_category_shares(tables):
    real, synthetic = tables
    display = MarginalsDisplay.from_data(real, synthetic)
    assert set(display.categories_) == {"island", "year", "male"}  # "year": 3 values
    for column, categories in display.categories_.items():
        for frame, bars in zip((real, synthetic), display.artists_[column], strict=True):
            # pandas' shares among the entries that are not missing, computed apart.
            expected = frame[column].value_counts(normalize=True)
            heights = [bar.get_height() for bar in bars]
            np.testing.assert_allclose(heights, [expected.get(c, 0.0) for c in categories])
    assert display.categories_["island"] == ["Biscoe", "Dream", "Torgersen"]
    assert display.categories_["male"] == [False, True]
    plt.close("all")


def test_marginals_histograms_are_densities_over_shared_bins(tables):
    real, synthetic = tables
    display = MarginalsDisplay.from_data(real, synthetic, bins=15)
    both = np.concatenate([real["mass"], synthetic["mass"]])
    edges = np.histogram_bin_edges(both, bins=15)
    for frame, patches in zip((real, synthetic), display.artists_["mass"], strict=True):
        expected, _ = np.histogram(frame["mass"], bins=edges, density=True)
        np.testing.assert_allclose([p.get_height() for p in patches], expected)
        np.testing.assert_allclose([p.get_x() for p in patches], edges[:-1])
    plt.close("all")


def test_marginals_one_axes_per_column_in_reading_order(tables):
    real, synthetic = tables
    display = MarginalsDisplay.from_data(real, synthetic, n_cols=2)
    assert display.axes_.shape == (3, 2)
    titles = [ax.get_title() for ax in display.axes_.flat[:5]]
    assert titles == list(real.columns)
    assert not display.axes_[2, 1].axison  # six places, five columns
    assert [t.get_text() for t in display.legend_.get_texts()] == ["real", "synthetic"]
    assert display.axes_[0, 0].get_ylabel() == "share"
    assert display.axes_[0, 1].get_ylabel() == "density"
    plt.close("all")


def test_marginals_categorical_features_choose_the_bars(tables):
    real, synthetic = tables
    display = MarginalsDisplay.from_data(real, synthetic, categorical_features=["island", 3])
    assert set(display.categories_) == {"island", "male"}
    assert len(display.artists_["year"][0]) == 20  # a histogram of the default 20 bins
    none = MarginalsDisplay.from_data(real, synthetic, max_categories=2)
    assert "year" not in none.categories_ and "island" in none.categories_
    plt.close("all")


def test_marginals_keep_the_order_of_pandas_categories(tables):
    real, synthetic = tables
    order = ["Torgersen", "Dream", "Biscoe"]
    real = real.assign(island=real["island"].astype("category").cat.set_categories(order))
    display = MarginalsDisplay.from_data(real, synthetic)
    assert display.categories_["island"] == order
    labels = [t.get_text() for t in display.axes_.flat[0].get_xticklabels()]
    assert labels == order
    plt.close("all")


def test_marginals_keep_the_order_of_a_polars_enum(tables):
    pl = pytest.importorskip("polars")
    real, synthetic = (pl.from_pandas(frame[["island", "mass"]]) for frame in tables)
    order = ["Torgersen", "Dream", "Biscoe"]
    real = real.with_columns(pl.col("island").cast(pl.Enum(order)))
    display = MarginalsDisplay.from_data(real, synthetic)
    assert display.categories_["island"] == order
    # A Categorical declares no order: its categories are sorted.
    display = MarginalsDisplay.from_data(
        real.with_columns(pl.col("island").cast(pl.String).cast(pl.Categorical)), synthetic
    )
    assert display.categories_["island"] == sorted(order)
    plt.close("all")


def test_marginals_leave_out_pandas_missing_values(tables):
    pd = pytest.importorskip("pandas")
    real, synthetic = tables
    # pandas' NA in nullable columns is missing, as None is in an object column.
    nullable = real.astype({"island": "string", "male": "boolean"})
    nullable.loc[:9, "male"] = pd.NA
    display = MarginalsDisplay.from_data(nullable, synthetic)
    assert display.categories_["island"] == ["Biscoe", "Dream", "Torgersen"]
    shares = nullable["male"].value_counts(normalize=True)
    heights = [bar.get_height() for bar in display.artists_["male"][0]]
    np.testing.assert_allclose(heights, [shares[False], shares[True]])
    plt.close("all")


def test_marginals_of_polars_frames_match_those_of_pandas(tables):
    pl = pytest.importorskip("polars")
    real, synthetic = tables
    from_pandas = MarginalsDisplay.from_data(real, synthetic)
    from_polars = MarginalsDisplay.from_data(pl.from_pandas(real), pl.from_pandas(synthetic))
    assert from_polars.categories_ == from_pandas.categories_
    for column in real.columns:
        for a, b in zip(from_pandas.artists_[column], from_polars.artists_[column], strict=True):
            assert [p.get_height() for p in a] == [p.get_height() for p in b]
    plt.close("all")


def test_marginals_from_estimator_draws_the_models_samples(vae, digits):
    X = digits[0][:, 20:26]
    small = VAEEstimator(n_components=2, **SMALL).fit(X)
    display = MarginalsDisplay.from_estimator(small, X, n_samples=50, random_state=4)
    np.testing.assert_array_equal(display.synthetic, small.sample(50, random_state=4))
    assert display.real is X and display.axes_.shape == (2, 4)
    default = MarginalsDisplay.from_estimator(small, X)  # as many rows, the model's seed
    np.testing.assert_array_equal(default.synthetic, small.sample(len(X)))
    plt.close("all")


def test_marginals_from_a_pipeline_are_in_the_units_of_its_input(pipe, digits):
    X = digits[0]
    display = MarginalsDisplay.from_estimator(pipe, X, n_samples=30, random_state=0)
    draws = pipe[-1].sample(30, random_state=0)
    np.testing.assert_allclose(display.synthetic, pipe[0].inverse_transform(draws))
    assert len(display.artists_) == 64
    plt.close("all")


def test_marginals_draw_into_the_axes_given(tables):
    real, synthetic = tables
    fig, axes = plt.subplots(2, 3)
    display = MarginalsDisplay.from_data(real, synthetic, ax=axes)
    assert display.figure_ is fig and display.axes_.shape == (2, 3)
    assert [ax.get_title() for ax in axes.flat[:5]] == list(real.columns)
    with pytest.raises(ValueError, match="ax holds 4 Axes, but there are 5 columns"):
        MarginalsDisplay.from_data(real, synthetic, ax=axes.flat[:4])
    with pytest.raises(ValueError, match="same columns in the same order"):
        MarginalsDisplay.from_data(real, synthetic[["mass", "island", "year", "male", "bill"]])
    plt.close("all")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"synthetic": np.zeros((5, 2))}, "synthetic has 2 columns, but real has 3"),
        ({"categorical_features": ["colour"]}, "not there: \\['colour'\\]"),
        ({"max_categories": 0}, "max_categories must be a positive int"),
        ({"real": np.zeros(4)}, "real must be 2-D"),
    ],
)
def test_marginals_bad_data_raise_before_a_figure_is_made(kwargs, message):
    plt.close("all")
    data = {"real": np.zeros((4, 3)), "synthetic": np.ones((5, 3)), **kwargs}
    with pytest.raises(ValueError, match=message):
        MarginalsDisplay(**data).plot()
    assert plt.get_fignums() == []


def test_marginals_of_an_unfitted_estimator_raise_not_fitted(digits):
    with pytest.raises(NotFittedError):
        MarginalsDisplay.from_estimator(VAEEstimator(), digits[0])


def test_marginals_from_an_estimator_fitted_on_a_frame_draw_a_frame(tables):
    real, _ = tables
    vae = VAEEstimator(likelihood="auto", **SMALL).fit(real)
    display = MarginalsDisplay.from_estimator(vae, real, n_samples=80, random_state=0)
    assert list(display.synthetic.columns) == list(real.columns)
    assert set(display.categories_) == {"island", "year", "male"}
    shares = display.synthetic["island"].value_counts(normalize=True)
    heights = [bar.get_height() for bar in display.artists_["island"][1]]
    np.testing.assert_allclose(
        heights, [shares.get(c, 0.0) for c in display.categories_["island"]]
    )
    plt.close("all")


# ---------------------------------------------------------------- ClustersDisplay


@pytest.fixture(scope="module")
def clusterer(digits):
    return VAEClusterer(4, **SMALL).fit(digits[0] / 16)


def test_clusters_display_draws_the_decoded_centres_as_images(clusterer, digits):
    display = ClustersDisplay.from_estimator(clusterer, digits[0] / 16, image_shape=(8, 8))
    np.testing.assert_array_equal(display.centers, clusterer.cluster_centers_)
    # 2 x 2 images of 8 x 8 pixels, one blank pixel between them.
    assert display.image_.get_array().shape == (17, 17)
    assert [t.get_text() for t in display.ax_.texts][0].startswith("0: ")
    plt.close("all")


def test_clusters_display_profiles_are_centres_in_standard_deviations_of_x():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(10, 2, 200),
            "b": rng.normal(0, 5, 200),
            "kind": rng.choice(["u", "v"], 200),
        }
    )
    clusterer = VAEClusterer(2, likelihood="auto", **SMALL).fit(frame)
    display = ClustersDisplay.from_estimator(clusterer, frame)
    centres = clusterer.cluster_centers_[["a", "b"]].to_numpy()
    numbers = frame[["a", "b"]].to_numpy()
    expected = (centres - numbers.mean(axis=0)) / numbers.std(axis=0)
    np.testing.assert_allclose(display.centers, expected)
    assert display.feature_names == ["a", "b"]  # the labels are left out
    assert [t.get_text() for t in display.ax_.get_xticklabels()] == ["a", "b"]
    plt.close("all")


def test_clusters_display_refuses_a_model_without_clusters(vae, digits):
    with pytest.raises(TypeError, match="calls predict_proba and cluster_centers_ of the model"):
        ClustersDisplay.from_estimator(vae, digits[0])
