"""The likelihood families and mixed tables, end to end through VAEEstimator."""

import pickle
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import VAEEstimator
from skvae._family_data import HEAVY_TAILS, excess_kurtosis, skewness

FAST = dict(hidden_layer_sizes=(32,), max_iter=40, random_state=0)


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAEEstimator(**{**FAST, **params}).fit(X)


def _overdispersed_counts(n, seed=0):
    # Counts from a 2-D latent process with gamma noise on the rates (theta = 2): their
    # variance is mu + mu^2 / 2, far above the Poisson's mu.
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 2))
    W = rng.normal(scale=0.5, size=(2, 6))
    mu = np.exp(Z @ W + 1.5)
    return rng.poisson(rng.gamma(2.0, mu / 2.0)).astype(float)


def test_negative_binomial_beats_poisson_on_overdispersed_counts():
    X_train, X_test = train_test_split(_overdispersed_counts(2000), random_state=0)
    scores = {
        name: _fit(X_train, likelihood=name, max_iter=100).score(X_test)
        for name in ("poisson", "negative_binomial")
    }
    assert scores["negative_binomial"] > scores["poisson"] + 0.5


def test_zero_inflated_negative_binomial_beats_negative_binomial_on_dropouts():
    # Near-Poisson counts of mean about 12 (theta = 20) with 30% of them set to 0: a
    # negative binomial can only place that many zeros by a large overdispersion.
    rng = np.random.default_rng(1)
    mu = np.exp(rng.normal(size=(2000, 2)) @ rng.normal(scale=0.5, size=(2, 6)) + 2.5)
    X = rng.poisson(rng.gamma(20.0, mu / 20.0)).astype(float)
    X[rng.uniform(size=X.shape) < 0.3] = 0
    X_train, X_test = train_test_split(X, random_state=0)
    scores = {
        name: _fit(X_train, likelihood=name, max_iter=100).score(X_test)
        for name in ("negative_binomial", "zero_inflated_negative_binomial")
    }
    assert scores["zero_inflated_negative_binomial"] > scores["negative_binomial"] + 0.5


def _documents(n, seed=0):
    # A topic model: each row mixes 3 topics over 20 words, with 10-80 words per row.
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(20, 0.2), size=3)
    shares = rng.dirichlet(np.full(3, 0.5), size=n) @ topics
    totals = rng.integers(10, 80, size=n)
    return np.array([rng.multinomial(k, q) for k, q in zip(totals, shares, strict=True)], float)


def test_multinomial_beats_poisson_on_documents():
    X_train, X_test = train_test_split(_documents(2000), random_state=0)
    scores = {
        name: _fit(X_train, likelihood=name, max_iter=100).score(X_test)
        for name in ("poisson", "multinomial")
    }
    # Both are log p(x); the Poisson must also spend its two latent dimensions on the total.
    assert scores["multinomial"] > scores["poisson"] + 0.3
    vae = _fit(X_train, likelihood="multinomial", max_iter=5)
    means = vae.inverse_transform(vae.transform(X_test[:5]))
    np.testing.assert_allclose(means.sum(axis=1), X_train.sum(axis=1).mean())
    X_test[0, 3] = np.nan
    with pytest.raises(ValueError, match="missing entry leaves unknown"):
        vae.score_samples(X_test[:5])


def test_count_families_sample_integers_and_decode_positive_means():
    X = _overdispersed_counts(300)
    families = ("poisson", "negative_binomial", "zero_inflated_negative_binomial", "multinomial")
    for name in families:
        vae = _fit(X, likelihood=name)
        draws = vae.sample(200, random_state=0)
        assert np.all(draws == np.round(draws)) and draws.min() >= 0
        assert np.all(vae.inverse_transform(vae.transform(X[:5])) > 0)
        assert not hasattr(vae, "noise_variance_")
        with pytest.raises(ValueError, match="non-negative integer counts"):
            vae.score_samples(X[:5] - 100)


def test_continuous_bernoulli_on_grey_levels():
    X = load_digits().data / 16.0
    vae = _fit(X, likelihood="continuous_bernoulli")
    draws = vae.sample(100, random_state=0)
    assert draws.min() >= 0 and draws.max() <= 1
    assert len(np.unique(draws)) > 1000  # continuous draws, not 0/1
    means = vae.inverse_transform(vae.transform(X[:20]))
    assert np.all((means > 0) & (means < 1))
    # A density on [0, 1]^64 can exceed 1: the score is not bounded by 0 as bernoulli's is.
    assert np.isfinite(vae.score(X[:100]))


def test_categorical_columns_learn_their_categories():
    rng = np.random.default_rng(0)
    z = rng.normal(size=400)
    X = np.column_stack([np.digitize(z, [-0.5, 0.5]), (z + rng.normal(size=400) > 0) * 4])
    vae = _fit(X.astype(float), likelihood="categorical", max_iter=300)
    # Categories are the values seen, not 0 to the largest: column 1 has two, 0 and 4.
    assert vae.module_.likelihood.n_categories == [3, 2]
    assert {k: v.tolist() for k, v in vae.categories_.items()} == {0: [0, 1, 2], 1: [0, 4]}
    draws = vae.sample(300, random_state=0)
    assert set(np.unique(draws[:, 0])) == {0, 1, 2} and set(np.unique(draws[:, 1])) == {0, 4}
    modes = vae.inverse_transform(vae.transform(X))
    # The latent carries the category: well above the most frequent category's share.
    majority = np.bincount(X[:, 0].astype(int)).max() / len(X)
    assert np.mean(modes[:, 0] == X[:, 0]) > majority + 0.1
    with pytest.warns(UserWarning, match="column 1 .e.g. 2. was not seen in fit"):
        vae.transform(np.array([[0.0, 2.0]]))


def _mixed_table(n=600, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    gauss = z @ rng.normal(size=(2, 2)) + 0.3 * rng.normal(size=(n, 2))
    binary = (z[:, :1] + 0.5 * rng.normal(size=(n, 1)) > 0).astype(float)
    counts = rng.poisson(np.exp(0.5 * z[:, 1:] + 1.0)).astype(float)
    category = np.digitize(z[:, :1] - z[:, 1:], [-1.0, 0.0, 1.0]).astype(float)
    return np.hstack([gauss, binary, counts, category])


MIXED = {"gaussian": [0, 1], "bernoulli": [2], "poisson": [3], "categorical": [4]}


def test_mixed_table_is_fitted_and_sampled_in_each_columns_support():
    X = _mixed_table()
    vae = _fit(X, likelihood=MIXED, max_iter=60)
    draws = vae.sample(500, random_state=0)
    assert set(np.unique(draws[:, 2])) <= {0.0, 1.0}
    assert np.all(draws[:, 3] == np.round(draws[:, 3])) and draws[:, 3].min() >= 0
    assert set(np.unique(draws[:, 4])) <= {0.0, 1.0, 2.0, 3.0}
    assert len(np.unique(draws[:, 0])) == 500  # continuous
    # Column means of the draws follow the data's.
    np.testing.assert_allclose(draws[:, 2:4].mean(axis=0), X[:, 2:4].mean(axis=0), rtol=0.25)
    noise = vae.noise_variance_
    assert np.all(noise[:2] > 0) and np.isnan(noise[2:]).all()
    mean = vae.inverse_transform(vae.transform(X[:10]))
    assert np.all((mean[:, 2] > 0) & (mean[:, 2] < 1)) and np.all(mean[:, 3] > 0)
    assert np.all(np.isfinite(vae.score_samples(X[:50])))
    # The learned categories travel with the pickle.
    loaded = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(loaded.score_samples(X[:50]), vae.score_samples(X[:50]))


def test_a_dict_with_one_family_is_that_family():
    # The same seeds build the same networks: the mixed machinery adds nothing of its own.
    X = _mixed_table(300)
    gauss_cols = X[:, :2]
    whole = _fit(gauss_cols, likelihood="gaussian")
    as_dict = _fit(gauss_cols, likelihood={"gaussian": [0, 1]})
    np.testing.assert_allclose(as_dict.score_samples(gauss_cols), whole.score_samples(gauss_cols))


def test_mixed_with_dataframe_column_names():
    pd = pytest.importorskip("pandas")
    X = _mixed_table(200)
    df = pd.DataFrame(X, columns=["g1", "g2", "flag", "events", "kind"])
    spec = {"gaussian": ["g1", "g2"], "bernoulli": "flag", "poisson": ["events"]}
    vae = _fit(df, likelihood={**spec, "categorical": [-1]})
    parts = vae.module_.likelihood.config["parts"]
    assert [p["columns"] for p in parts] == [[0, 1], [2], [3], [4]]
    assert vae.sample(3).shape == (3, 5)


@pytest.mark.parametrize(
    "likelihood, pattern",
    [
        ({"gaussian": [0, 1, 2], "poisson": [3]}, r"leaves columns \[4\] without a family"),
        ({"gaussian": [0, 1, 2, 3, 4], "poisson": [3]}, "given to both 'gaussian' and 'poisson'"),
        ({"gaussian": [0, 1, 2, 3], "gamma": [4]}, "Unknown family 'gamma'"),
        ({"gaussian": [0, 1, 2, 3, 7]}, "column 7 is not a column of X, which has 5 columns"),
        ({"gaussian": ["a", 1, 2, 3, 4]}, "X has no column names"),
        ({"gaussian": [0, 1, 2, 4], "poisson": [3.5]}, "column 3.5 is not a column of X"),
        ({"gaussian": [0, 1], "poisson": [2, 3], "bernoulli": [4]}, r"bernoulli.*\[0, 1\]"),
    ],
)
def test_bad_likelihood_dicts_get_clear_errors(likelihood, pattern):
    X = _mixed_table(50)
    X[:, 4] *= 2  # category codes up to 6: fine for categorical, not for bernoulli
    with pytest.raises(ValueError, match=pattern):
        _fit(X, likelihood=likelihood)


def test_auto_likelihood_gives_each_column_its_family_and_can_be_passed_back():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    z = rng.normal(size=400)
    df = pd.DataFrame(
        {
            "height": 170 + 10 * z + rng.normal(size=400),
            "visits": rng.negative_binomial(2, 0.3, 400),  # variance above the mean
            "calls": rng.binomial(100, 0.5, 400),  # counts that vary less than their mean
            "smoker": (z + rng.normal(size=400) > 0).astype(int),
            "share": 1 / (1 + np.exp(-z - rng.normal(size=400))),  # strictly inside (0, 1)
            "grey": np.clip(0.5 + 0.3 * z, 0.0, 1.0),  # [0, 1] with exact zeros and ones
            "income": np.exp(10 + z + 0.5 * rng.normal(size=400)),  # positive, right-skewed
        }
    )
    df.loc[3, "visits"] = np.nan  # a missing entry does not change the choice
    vae = _fit(df, likelihood="auto", max_iter=5)
    assert vae.likelihood_ == {
        "gaussian": ["height"],
        "negative_binomial": ["visits"],
        "poisson": ["calls"],
        "bernoulli": ["smoker"],
        "logit_normal": ["share"],
        "continuous_bernoulli": ["grey"],
        "lognormal": ["income"],
    }
    again = _fit(df, likelihood=vae.likelihood_, max_iter=5)
    np.testing.assert_allclose(again.score_samples(df[:20]), vae.score_samples(df[:20]))
    assert _fit(df.to_numpy(), likelihood="auto", max_iter=5).likelihood_["poisson"] == [2]
    assert _fit(df, max_iter=5).likelihood_ == "gaussian"


def _heavy_tailed(n, seed=0):
    # A 1-D latent curve in 5 columns with Student's t noise of 2 degrees of freedom: a few
    # rows lie tens of noise scales out.
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    return np.tanh(z @ rng.normal(size=(1, 5))) + 0.2 * rng.standard_t(2.0, size=(n, 5))


def test_student_t_beats_gaussian_on_heavy_tailed_noise():
    X_train, X_test = train_test_split(_heavy_tailed(1200), random_state=0)
    scores = {
        name: _fit(X_train, likelihood=name, max_iter=60).score(X_test)
        for name in ("gaussian", "student_t")
    }
    assert scores["student_t"] > scores["gaussian"] + 1.0


def test_auto_likelihood_gives_heavy_tailed_columns_student_t():
    rng = np.random.default_rng(0)
    X = np.column_stack(
        [
            rng.normal(size=500),
            rng.standard_t(2.0, size=500) * 1e6,  # heavy tails in any units
            rng.uniform(-5, 5, size=500),
            rng.standard_t(4.0, size=500),  # an excess kurtosis of 6 in theory
        ]
    )
    assert stats.kurtosis(X[:, 3]) > HEAVY_TAILS > stats.kurtosis(X[:, 0])
    vae = _fit(X, likelihood="auto", max_iter=2)
    assert vae.likelihood_ == {"gaussian": [0, 2], "student_t": [1, 3]}
    for column in X.T:
        assert excess_kurtosis(column) == pytest.approx(stats.kurtosis(column), rel=1e-9)
        assert skewness(column) == pytest.approx(stats.skew(column), rel=1e-9)


def test_auto_likelihood_warns_of_columns_that_look_like_row_identifiers():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "name": [f"tree {i}" for i in rng.permutation(n)],  # every row its own label
            "row": rng.permutation(n) + 1,  # 1, ..., n in some order
            "height": rng.normal(20, 2, n),  # distinct measurements: no identifier
            "income": rng.choice(100_000, n, replace=False),  # distinct, not consecutive
            "kind": rng.choice(["oak", "pine"], n),
        }
    )
    with pytest.warns(FutureWarning, match=r"\['name', 'row'\] of X look like row identifiers"):
        _fit(frame, likelihood="auto", max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        _fit(frame.drop(columns=["name", "row"]), likelihood="auto", max_iter=2)
        _fit(frame.iloc[:19], likelihood="auto", max_iter=2)  # too few rows to tell
        # A family given by the user is the user's choice.
        _fit(frame[["row", "height"]], likelihood="gaussian", max_iter=2)


def test_auto_likelihood_keeps_its_families_over_partial_fit_blocks():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.binomial(100, 0.5, 300)]).astype(float)
    vae = VAEEstimator(likelihood="auto", hidden_layer_sizes=(8,), random_state=0)
    vae.partial_fit(X[:150])
    block = X[150:].copy()
    block[:, 1] = block[:, 1] > 50  # this block alone would look binary
    vae.partial_fit(block)
    assert vae.likelihood_ == {"gaussian": [0], "poisson": [1]}


def test_auto_likelihood_transforms_the_test_split_of_images_scaled_to_unit_interval():
    # Issue 28: pixels / 16 have few distinct values per column, and a value the training
    # split happened not to hold (0.125 in column 2) made transform raise.
    X = load_digits().data / 16
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    vae = _fit(X_train, n_components=10, likelihood="auto", max_iter=2)
    assert "categorical" not in vae.likelihood_  # fractions are measurements, not codes
    assert vae.transform(X_test).shape == (len(X_test), 10)
    assert np.all(np.isfinite(vae.score_samples(X_test)))


@pytest.mark.parametrize(
    ("low", "high", "family", "support"),
    [
        (0.01, 0.95, "logit_normal", r"outside \(0, 1\)"),
        (0.0, 0.95, "continuous_bernoulli", r"outside \[0, 1\]"),
        (0.5, 40.0, "lognormal", "not positive"),
    ],
)
def test_a_test_value_outside_the_range_auto_inferred_from_training_is_treated_as_missing(
    low, high, family, support
):
    # A column whose training values happen to lie in (0, 1), or to be positive, gets a
    # family of that range; a test row beyond it made score_samples raise.
    rng = np.random.default_rng(0)
    z = rng.normal(size=400)
    if family == "lognormal":
        column = np.exp(1.5 * z + 1)
    else:  # shifted down so that the low clip makes exact zeros where low is 0
        column = 1 / (1 + np.exp(-z)) - 0.05
    column = np.clip(column, low, high)
    X = np.column_stack([z + 0.3 * rng.normal(size=400), column])
    vae = _fit(X, likelihood="auto", max_iter=5)
    assert vae.likelihood_[family] == [1]
    new = np.array([[0.1, 0.5], [2.0, -1.5 if family == "lognormal" else 1.15]])
    as_missing = new.copy()
    as_missing[1, 1] = np.nan
    message = f"1 value of column 1 \\(e.g. {new[1, 1]:g}\\) was {support}, where its family"
    with pytest.warns(UserWarning, match=message):
        scores = vae.score_samples(new)
    np.testing.assert_allclose(scores, vae.score_samples(as_missing))
    with pytest.warns(UserWarning, match=support):
        np.testing.assert_allclose(vae.transform(new), vae.transform(as_missing))
    with pytest.raises(ValueError, match=family):  # training data outside it is an error
        _fit(new, likelihood={family: [1], "gaussian": [0]}, max_iter=1)


def test_a_value_unseen_in_fit_of_a_categorical_column_of_numbers_is_treated_as_missing():
    rng = np.random.default_rng(0)
    z = rng.normal(size=300)
    X = np.column_stack([z + 0.3 * rng.normal(size=300), np.digitize(z, [-0.5, 0.5])])
    vae = _fit(X.astype(float), likelihood="auto", max_iter=5)
    assert vae.likelihood_ == {"gaussian": [0], "categorical": [1]}
    new = np.array([[0.1, 1.0], [2.0, 7.0], [-1.0, 0.0]])  # 7 was never a category
    as_missing = new.copy()
    as_missing[1, 1] = np.nan
    message = r"1 value of categorical column 1 \(e.g. 7\) was not seen in fit: treated as missing"
    with pytest.warns(UserWarning, match=message):
        Z = vae.transform(new)
    np.testing.assert_array_equal(Z, vae.transform(as_missing))
    with pytest.warns(UserWarning, match="not seen in fit"):
        scores = vae.score_samples(new)
    np.testing.assert_array_equal(scores, vae.score_samples(as_missing))
    with pytest.warns(UserWarning, match="not seen in fit"):
        filled = vae.conditional_mean(new)
    np.testing.assert_array_equal(filled, new)  # an observed value is kept as it is


def test_a_test_value_that_is_not_a_count_in_an_auto_count_column_is_treated_as_missing():
    # Whole numbers in training (hours studied) get a count family; a test row of 7.5
    # hours made transform raise (openintro's gpa_study_hours, in a sweep of R tables).
    rng = np.random.default_rng(0)
    z = rng.normal(size=400)
    X = np.column_stack([z + 0.3 * rng.normal(size=400), rng.poisson(np.exp(2 + 0.5 * z))])
    vae = _fit(X.astype(float), likelihood="auto", max_iter=5)
    family = next(name for name, columns in vae.likelihood_.items() if columns == [1])
    assert family in ("poisson", "negative_binomial")
    new = np.array([[0.1, 3.0], [2.0, 7.5], [-1.0, -2.0]])
    as_missing = new.copy()
    as_missing[1:, 1] = np.nan
    message = r"2 values of column 1 \(e.g. 7.5\) were not counts \(whole numbers from 0\)"
    with pytest.warns(UserWarning, match=message):
        scores = vae.score_samples(new)
    np.testing.assert_allclose(scores, vae.score_samples(as_missing))
    with pytest.raises(ValueError, match="needs non-negative integer counts"):  # when named
        _fit(new, likelihood={family: [1], "gaussian": [0]}, max_iter=1)
