"""VAEImputer: fills against the exact conditional mean, the imputer API, errors."""

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_param_validation

from skvae import VAEEstimator, VAEImputer
from skvae._imputer import hide_observed
from skvae.datasets import make_linear_gaussian

FAST = {"hidden_layer_sizes": (16,), "max_iter": 30, "n_importance_samples": 30, "n_estimators": 1}
IMPUTER_PARAMS = {
    "missing_values",
    "n_importance_samples",
    "n_estimators",
    "add_indicator",
    "sample_posterior",
}


def _imputer(**params):
    """A VAEImputer around a VAEEstimator: each takes its own parameters of ``params``."""
    params = {**FAST, "random_state": 0, **params}
    own = {k: v for k, v in params.items() if k in IMPUTER_PARAMS | {"random_state"}}
    vae_params = {"kl_warmup_iter": 10, **{k: v for k, v in params.items() if k not in own}}
    vae = VAEEstimator(**vae_params)
    return VAEImputer(vae, **own)


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _imputer(**params).fit(X)


def _remove(X, fraction, seed):
    X_missing = X.copy()
    X_missing[np.random.default_rng(seed).uniform(size=X.shape) < fraction] = np.nan
    empty = np.isnan(X_missing).all(axis=1)
    X_missing[empty, 0] = X[empty, 0]
    return X_missing


def _exact_conditional_mean(model, X_missing):
    """E[x_missing | x_observed] under the true linear-Gaussian model."""
    cov = model.components.T @ model.components + np.diag(model.noise_variance)
    filled = X_missing.copy()
    for i, row in enumerate(X_missing):
        m = np.isnan(row)
        if m.any():
            o = ~m
            gain = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
            filled[i, m] = model.mean[m] + gain @ (row[o] - model.mean[o])
    return filled


@pytest.fixture(scope="module")
def linear():
    X, model = make_linear_gaussian(
        3000, n_features=6, n_components=2, noise_scale=0.4, random_state=0
    )
    X_missing = _remove(X, 0.25, seed=1)
    imputer = _fit(
        X_missing,
        hidden_layer_sizes=(64, 64),
        kl_warmup_iter=30,
        max_iter=300,
        learning_rate_init=3e-3,
        n_importance_samples=200,
    )
    return X, X_missing, model, imputer


def test_fills_approach_the_exact_conditional_mean(linear):
    X, X_missing, model, imputer = linear
    rows = slice(0, 600)
    missing = np.isnan(X_missing[rows])
    filled = imputer.transform(X_missing[rows])
    exact = _exact_conditional_mean(model, X_missing[rows])
    spread = X[rows][missing].std()

    def rmse(A, B):
        return np.sqrt(np.mean((A[missing] - B[missing]) ** 2))

    # Close to the best possible fill, relative to the spread of the data...
    assert rmse(filled, exact) < 0.1 * spread
    # ...hence nearly as good as it at recovering the removed values, and far better
    # than the column means.
    best = rmse(exact, X[rows])
    assert rmse(filled, X[rows]) < 1.05 * best
    mean_fill = SimpleImputer().fit(X_missing).transform(X_missing[rows])
    assert rmse(filled, X[rows]) < 0.6 * rmse(mean_fill, X[rows])


def test_draws_follow_the_exact_conditional_distribution(linear):
    # Each drawn entry, standardised by the true model's conditional mean and standard
    # deviation given the row's observed entries, is a draw of N(0, 1) if the model is right.
    X, X_missing, model, imputer = linear
    rows = X_missing[:600]
    cov = model.components.T @ model.components + np.diag(model.noise_variance)
    vae = imputer.estimators_[0]
    z = []
    for seed in range(3):
        drawn = vae.conditional_sample(rows, n_importance_samples=200, random_state=seed)
        for row, draw in zip(rows, drawn, strict=True):
            m = np.isnan(row)
            if m.any():
                o = ~m
                gain = cov[np.ix_(m, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
                mean = model.mean[m] + gain @ (row[o] - model.mean[o])
                sd = np.sqrt(np.diag(cov[np.ix_(m, m)] - gain @ cov[np.ix_(o, m)]))
                z.extend((draw[m] - mean) / sd)
    z = np.asarray(z)
    assert len(z) > 1000
    assert abs(z.mean()) < 0.1
    assert 0.8 < z.var() < 1.3
    # The mean fill is one value, with none of that spread.
    exact = _exact_conditional_mean(model, rows)
    missing = np.isnan(rows)
    assert np.std(imputer.transform(rows)[missing] - exact[missing]) < 0.3 * np.sqrt(z.var())


def test_sample_posterior_draws_anew_at_each_transform_from_the_same_seed(linear):
    X, X_missing, _, imputer = linear
    rows = X_missing[:200]
    missing = np.isnan(rows)
    drawing = copy.deepcopy(imputer).set_params(sample_posterior=True)
    drawing.random_state_ = np.random.RandomState(0)
    first, second = drawing.transform(rows), drawing.transform(rows)
    np.testing.assert_array_equal(first[~missing], rows[~missing])
    assert not np.isnan(first).any()
    assert np.mean(first[missing] != second[missing]) > 0.99  # new draws
    drawing.random_state_ = np.random.RandomState(0)
    np.testing.assert_array_equal(drawing.transform(rows), first)  # from the seed alone
    # Draws spread around the mean fill: 20 of them average near it.
    draws = np.mean([drawing.transform(rows) for _ in range(20)], axis=0)
    fill = imputer.transform(rows)
    spread = np.std(first[missing] - fill[missing])
    assert np.std(draws[missing] - fill[missing]) < 0.4 * spread


def test_observed_entries_pass_through_exactly(linear):
    _, X_missing, _, imputer = linear
    filled = imputer.transform(X_missing[:200])
    observed = ~np.isnan(X_missing[:200])
    np.testing.assert_array_equal(filled[observed], X_missing[:200][observed])
    assert not np.isnan(filled).any()


def test_transform_is_deterministic_and_row_order_independent(linear):
    _, X_missing, _, imputer = linear
    rows = X_missing[:50]
    first = imputer.transform(rows)
    np.testing.assert_array_equal(imputer.transform(rows), first)
    order = np.random.default_rng(0).permutation(50)
    np.testing.assert_allclose(imputer.transform(rows[order]), first[order], atol=1e-12)
    np.testing.assert_allclose(imputer.transform(rows[10:20]), first[10:20], atol=1e-12)


def test_same_seed_same_imputer():
    X, _ = make_linear_gaussian(300, n_features=4, random_state=1)
    X_missing = _remove(X, 0.2, seed=2)
    a = _fit(X_missing).transform(X_missing)
    b = _fit(X_missing).transform(X_missing)
    np.testing.assert_array_equal(a, b)


def test_add_indicator_matches_missing_indicator():
    X, _ = make_linear_gaussian(300, n_features=5, random_state=1)
    X_missing = _remove(X, 0.2, seed=2)
    X_missing[:, 3] = X[:, 3]  # a column with nothing missing: no indicator column
    imputer = _fit(X_missing, add_indicator=True)
    out = imputer.transform(X_missing[:40])
    indicator = MissingIndicator().fit(X_missing).transform(X_missing[:40])
    assert out.shape == (40, 5 + 4)
    np.testing.assert_array_equal(out[:, 5:], indicator)
    np.testing.assert_array_equal(
        imputer.get_feature_names_out(),
        ["x0", "x1", "x2", "x3", "x4"] + [f"missingindicator_x{j}" for j in (0, 1, 2, 4)],
    )


def test_numeric_placeholder_for_missing_values():
    X, _ = make_linear_gaussian(300, n_features=4, random_state=3)
    X_nan = _remove(X, 0.2, seed=4)
    X_placeholder = np.where(np.isnan(X_nan), -999.0, X_nan)
    with_nan = _fit(X_nan, add_indicator=True)
    with_placeholder = _fit(X_placeholder, missing_values=-999.0, add_indicator=True)
    np.testing.assert_allclose(
        with_placeholder.transform(X_placeholder), with_nan.transform(X_nan), atol=1e-12
    )
    # NaN is not a missing value then: it is an error, as in SimpleImputer.
    with pytest.raises(ValueError, match="NaN"):
        with_placeholder.transform(X_nan)


def test_feature_names_with_a_dataframe():
    X, _ = make_linear_gaussian(200, n_features=3, random_state=0)
    df = pd.DataFrame(_remove(X, 0.2, seed=0), columns=["a", "b", "c"])
    imputer = _fit(df, add_indicator=True)
    names = imputer.get_feature_names_out()
    assert list(names) == ["a", "b", "c"] + [f"missingindicator_{c}" for c in "abc"]
    assert imputer.transform(df).shape == (200, 6)


def test_in_a_pipeline_before_a_classifier():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X_missing = _remove(X, 0.2, seed=0)
    imputer = _imputer(n_components=5)
    pipe = make_pipeline(StandardScaler(), imputer, LogisticRegression(max_iter=1000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X_missing[::2], y[::2])
    assert pipe.score(X_missing[1::2], y[1::2]) > 0.9


@pytest.mark.parametrize(
    "likelihood, n_estimators",
    [
        ("categorical", 1),
        # Several VAEs vote on the categorical columns of a mixed table.
        ({"categorical": [0, 1], "bernoulli": [2]}, 3),
    ],
)
def test_categorical_columns_get_category_codes(likelihood, n_estimators):
    rng = np.random.default_rng(0)
    z = rng.integers(0, 3, size=400)
    # Two copies of the same variable: the model can read one from the other.
    codes = np.column_stack([z, z, rng.integers(0, 2, size=400)]).astype(float)
    codes_missing = codes.copy()
    codes_missing[::4, 0] = np.nan
    imputer = _fit(
        codes_missing,
        likelihood=likelihood,
        n_estimators=n_estimators,
        max_iter=200,
        learning_rate_init=1e-2,
    )
    filled = imputer.transform(codes_missing)
    assert set(np.unique(filled[::4, 0])) <= {0.0, 1.0, 2.0}
    assert np.mean(filled[::4, 0] == codes[::4, 0]) > 0.9


def test_several_vaes_fill_with_the_mean_of_their_fills():
    X, _ = make_linear_gaussian(300, n_features=4, random_state=0)
    X_missing = _remove(X, 0.2, seed=1)
    imputer = _fit(X_missing, n_estimators=3)
    assert len(imputer.estimators_) == 3
    assert imputer.n_iter_ == max(vae.n_iter_ for vae in imputer.estimators_)
    # Each VAE on its own, through the one-VAE imputer's transform: same model, same noise.
    singles = []
    for vae in imputer.estimators_:
        single = _fit(X_missing)
        single.estimators_ = [vae]
        single._crn_seed = imputer._crn_seed
        singles.append(single.transform(X_missing))
    assert not np.allclose(singles[0], singles[1])  # different seeds, different models
    np.testing.assert_allclose(imputer.transform(X_missing), np.mean(singles, axis=0))


def test_three_vaes_are_the_default_and_fill_with_the_mean_of_their_fills():
    X, _ = make_linear_gaussian(200, n_features=4, random_state=0)
    X_missing = _remove(X, 0.2, seed=1)
    vae = VAEEstimator(hidden_layer_sizes=(16,), max_iter=30, kl_warmup_iter=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer = VAEImputer(vae, n_importance_samples=30, random_state=0).fit(X_missing)
    assert len(imputer.estimators_) == 3
    seed = imputer._crn_seed
    fills = [
        m.conditional_mean(X_missing, n_importance_samples=30, random_state=seed)
        for m in imputer.estimators_
    ]
    np.testing.assert_allclose(imputer.transform(X_missing), np.mean(fills, axis=0))


def test_categorical_columns_of_several_vaes_take_the_hard_vote():
    from skvae._imputer import _combine

    # 3 models x 2 rows x 2 columns; column 1 is categorical.
    fills = [
        np.array([[0.0, 2.0], [1.0, 0.0]]),
        np.array([[1.0, 1.0], [2.0, 1.0]]),
        np.array([[2.0, 1.0], [3.0, 2.0]]),
    ]
    combined = _combine(fills, np.array([1]))
    np.testing.assert_array_equal(combined[:, 0], [1.0, 2.0])  # means
    np.testing.assert_array_equal(combined[:, 1], [1.0, 0.0])  # 1 wins 2:1; a tie -> 0
    assert _combine(fills[:1], np.array([1])) is fills[0]
    # Large codes cost nothing extra, and a three-way tie goes to the smallest.
    big = [np.array([[0.0, c]]) for c in (90_000.0, 7.0, 500.0)]
    assert _combine(big, np.array([1]))[0, 1] == 7.0


@pytest.mark.parametrize(
    "where, pattern",
    [("column", "Column 1 of X has no observed value"), ("inf", "infinity")],
)
def test_clear_errors(where, pattern):
    X = np.random.default_rng(0).normal(size=(30, 3))
    if where == "column":
        X[:, 1] = np.nan
    else:
        X[4, 0] = np.inf
    with pytest.raises(ValueError) as excinfo:
        _fit(X)
    message = str(excinfo.value)
    assert re.search(pattern, message), message
    assert "tensor" not in message.lower() and "torch" not in message.lower()


def test_rows_with_nothing_observed_get_each_columns_mean():
    # Such rows (common in real tables) made fit and transform raise; scikit-learn's
    # imputers fill them. The VAEs learn from the other rows, as if these were not there.
    X, _ = make_linear_gaussian(300, n_features=3, random_state=0)
    X_missing = _remove(X, 0.2, seed=0)
    with_empty = X_missing.copy()
    with_empty[[3, 7]] = np.nan
    imputer = _fit(with_empty)
    reference = _fit(np.delete(with_empty, [3, 7], axis=0))
    filled = imputer.transform(with_empty)
    kept = np.delete(np.arange(300), [3, 7])
    np.testing.assert_array_equal(filled[kept], reference.transform(X_missing[kept]))
    means = np.nanmean(with_empty, axis=0)  # the columns' observed training values
    np.testing.assert_allclose(filled[[3, 7]], [means, means])
    draws = _fit(with_empty, sample_posterior=True).transform(with_empty[:8])
    assert np.isfinite(draws).all() and not np.allclose(draws[3], draws[7])


def test_a_row_with_nothing_observed_gets_each_labels_most_frequent_value():
    frame = _without(_mixed_frame(300), 0.1, seed=0)
    frame.iloc[5] = None
    filled = _fit(frame, likelihood="auto").transform(frame.iloc[:8])
    assert filled["kind"].iloc[5] == frame["kind"].value_counts().idxmax()
    assert filled["soil"].iloc[5] == frame["soil"].value_counts().idxmax()
    assert filled["height"].iloc[5] == pytest.approx(frame["height"].mean(), abs=1e-6)
    assert filled.notna().all().all()


def test_param_validation():
    check_param_validation("VAEImputer", _imputer())


def test_the_default_chooses_between_two_vaes_on_hidden_entries():
    X, _ = make_linear_gaussian(300, n_features=4, random_state=0)
    X_missing = _remove(X, 0.2, seed=0)
    imputer = VAEImputer(n_estimators=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        X_filled = imputer.fit_transform(X_missing)
    assert imputer.estimator is None and imputer.estimators_[0].kl_warmup_iter == 10
    assert imputer.estimators_[0].random_state != 0  # a seed drawn from the imputer's
    scores = imputer.selection_scores_
    assert set(scores) == {(128, 128), (64,)}
    best = min(scores, key=scores.get)
    assert tuple(imputer.estimators_[0].hidden_layer_sizes) == best
    # Standardised squared errors: a useful fill is well below the variance (1).
    assert 0 < scores[best] < 0.5
    np.testing.assert_array_equal(X_filled[~np.isnan(X_missing)], X[~np.isnan(X_missing)])
    assert _fit(X_missing).selection_scores_ is None  # a VAE given: no choice


def test_hide_observed_keeps_an_entry_in_every_row_and_column():
    rng = np.random.RandomState(0)
    X = _remove(rng.normal(size=(400, 20)), 0.3, seed=1)
    X[:, 0] = np.nan
    X[0, 0] = 1.0  # a column with one observed entry keeps it
    X_hidden, hidden = hide_observed(X, 0.1, rng)
    observed = ~np.isnan(X)
    assert not (hidden & ~observed).any()  # only observed entries are hidden
    np.testing.assert_array_equal(np.isnan(X_hidden), ~observed | hidden)
    assert (~np.isnan(X_hidden)).any(axis=1).all() and (~np.isnan(X_hidden)).any(axis=0).all()
    assert abs(hidden.sum() / observed.sum() - 0.1) < 0.02 and not hidden[0, 0]
    X_one = np.array([[1.0, np.nan], [np.nan, 2.0]])  # nothing can be hidden
    assert not hide_observed(X_one, 0.9, rng)[1].any()


def test_the_default_keeps_its_first_candidate_when_nothing_can_be_hidden():
    X = np.random.default_rng(0).normal(size=(80, 1))  # one entry per row: none to spare
    imputer = VAEImputer(n_estimators=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer.fit(X)
    assert imputer.selection_scores_ == {}
    assert tuple(imputer.estimators_[0].hidden_layer_sizes) == (128, 128)


def test_vae_is_deprecated_for_the_first_of_estimators():
    X, _ = make_linear_gaussian(100, n_features=3, random_state=0)
    imputer = _fit(_remove(X, 0.2, seed=1), n_estimators=2, max_iter=2)
    with pytest.warns(FutureWarning, match=r"estimators_\[0\]"):
        assert imputer.vae_ is imputer.estimators_[0]


def _mixed_frame(n=600, seed=0):
    """Strings, a category dtype, booleans, nullable integers and floats; a tree's kind
    decides its height."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["oak", "pine", "birch"], size=n, p=[0.5, 0.3, 0.2])
    height = np.select([kind == "oak", kind == "pine"], [20.0, 30.0], 12.0) + rng.normal(0, 1, n)
    return pd.DataFrame(
        {
            "kind": kind,
            "soil": pd.Categorical(rng.choice(["clay", "sand"], n), categories=["sand", "clay"]),
            "healthy": pd.array(rng.uniform(size=n) < 0.7, dtype="boolean"),
            "rings": pd.array(np.round(height * 4 + rng.normal(0, 2, n)).astype(int), "Int64"),
            "height": height,
        }
    )


def _without(frame, fraction, seed):
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for column in out.columns:
        out.loc[rng.uniform(size=len(out)) < fraction, column] = None
    return out


def test_a_mixed_frame_is_filled_in_each_columns_own_type():
    frame = _mixed_frame()
    missing = _without(frame, 0.15, seed=1)
    imputer = _fit(missing, likelihood="auto", max_iter=300, add_indicator=True)
    filled = imputer.transform(missing)
    assert list(filled.columns) == list(frame.columns) + [
        f"missingindicator_{c}" for c in frame.columns
    ]
    assert filled[frame.columns].dtypes.to_dict() == missing.dtypes.to_dict()
    assert not filled[frame.columns].isna().any().any()
    observed = missing.notna()
    for column in frame.columns:
        kept = observed[column].to_numpy()
        assert (filled[column][kept] == missing[column][kept]).all()
        np.testing.assert_array_equal(filled[f"missingindicator_{column}"], ~kept)
    assert set(filled["kind"]) == {"oak", "pine", "birch"}
    assert (filled["rings"] == filled["rings"].round()).all()
    # The kind is read off the height: far better than the most common kind's share.
    hidden = ~observed["kind"].to_numpy()
    accuracy = (filled["kind"][hidden] == frame["kind"][hidden]).mean()
    assert accuracy > frame["kind"][hidden].value_counts(normalize=True).max() + 0.2


def test_sample_posterior_draws_labels_in_each_columns_own_type():
    frame = _mixed_frame()
    missing = _without(frame, 0.15, seed=1)
    imputer = _fit(missing, likelihood="auto", max_iter=300, sample_posterior=True)
    draws = [imputer.transform(missing) for _ in range(3)]
    hidden = missing["kind"].isna().to_numpy()
    for drawn in draws:
        assert drawn.dtypes.to_dict() == missing.dtypes.to_dict()
        assert not drawn.isna().any().any()
        assert set(drawn["kind"]) == {"oak", "pine", "birch"}
        assert (drawn["rings"] == drawn["rings"].round()).all()
    # Labels are drawn: the draws differ where the kind was missing, yet follow the height.
    assert (draws[0]["kind"][hidden] != draws[1]["kind"][hidden]).any()
    accuracy = (draws[0]["kind"][hidden] == frame["kind"][hidden]).mean()
    assert accuracy > frame["kind"][hidden].value_counts(normalize=True).max()
    again = _fit(missing, likelihood="auto", max_iter=300, sample_posterior=True)
    pd.testing.assert_frame_equal(again.transform(missing), draws[0])


def test_a_polars_frame_is_filled_in_a_polars_frame():
    pl = pytest.importorskip("polars")
    missing = pl.from_pandas(_without(_mixed_frame(300), 0.1, seed=2).astype({"soil": str}))
    filled = _fit(missing, likelihood="auto").transform(missing)
    assert isinstance(filled, pl.DataFrame) and filled.columns == missing.columns
    assert filled.null_count().sum_horizontal().item() == 0
    assert filled.schema == missing.schema


def test_a_frame_of_numbers_alone_gives_an_array_as_scikit_learns_imputers_do():
    frame = _mixed_frame(200)[["height"]].assign(width=lambda f: f["height"] / 2)
    missing = frame.assign(width=_without(frame, 0.1, seed=0)["width"])
    filled = _fit(missing).transform(missing)
    assert isinstance(filled, np.ndarray) and not np.isnan(filled).any()


def test_labels_need_a_family_of_labels():
    missing = _without(_mixed_frame(200), 0.1, seed=0)
    with pytest.raises(ValueError, match="kind"):
        _fit(missing, likelihood="gaussian")
    with pytest.raises(ValueError, match="missing_values=-1 applies to arrays only"):
        VAEImputer(missing_values=-1).fit(missing)


class _Overshooting(VAEEstimator):
    """A VAE whose fills of missing entries are far beyond any observed value."""

    def conditional_mean(self, X, **kwargs):
        out = super().conditional_mean(X, **kwargs)
        out[np.isnan(np.asarray(X, dtype=float))] = 1e9
        return out


def test_fills_stay_within_the_range_of_each_columns_observed_values():
    X, _ = make_linear_gaussian(300, n_features=3, random_state=0)
    X_missing = _remove(X, 0.2, seed=0)
    vae = _Overshooting(hidden_layer_sizes=(8,), max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        filled = VAEImputer(vae, n_estimators=1, random_state=0).fit_transform(X_missing)
    hidden = np.isnan(X_missing)
    top = np.nanmax(X_missing, axis=0)
    np.testing.assert_array_equal(filled[hidden], np.broadcast_to(top, X.shape)[hidden])


def test_a_new_value_outside_an_auto_familys_range_is_kept_and_not_conditioned_on():
    # On a frame, likelihood="auto" chooses each column's family from its training values:
    # a share in (0, 1) gets the logit-normal, and a test row holding a share of exactly 1
    # made transform raise, where VAEEstimator(likelihood="auto") treats it as missing.
    frame = _mixed_frame(300)
    frame["share"] = 1 / (1 + np.exp(-(frame["height"] - 20) / 5))
    imputer = _fit(_without(frame, 0.1, seed=0), likelihood="auto", n_estimators=1)
    assert imputer.estimators_[0].likelihood["logit_normal"] == [frame.columns.get_loc("share")]
    new = frame.iloc[:3].copy()
    new.loc[new.index[0], "share"] = 1.0
    new.loc[new.index[:2], "height"] = np.nan
    as_missing = new.assign(share=new["share"].where(new["share"] < 1))
    with pytest.warns(UserWarning, match=r"column 'share' \(e.g. 1\) was outside \(0, 1\)"):
        filled = imputer.transform(new)
    expected = imputer.transform(as_missing)
    assert filled["share"].iloc[0] == 1.0  # an observed entry is returned as given
    pd.testing.assert_frame_equal(filled.drop(columns="share"), expected.drop(columns="share"))


def test_a_label_unseen_in_fit_is_kept_and_not_conditioned_on():
    frame = _mixed_frame(300)
    imputer = _fit(_without(frame, 0.1, seed=0), likelihood="auto", n_estimators=1)
    new = frame.iloc[:3].copy()
    new.loc[new.index[0], "kind"] = "maple"
    new.loc[new.index[:2], "height"] = np.nan
    as_missing = new.copy()
    as_missing.loc[new.index[0], "kind"] = None
    with pytest.warns(UserWarning, match="categorical column 'kind' was not seen in fit"):
        filled = imputer.transform(new)
    expected = imputer.transform(as_missing)
    assert filled["kind"].iloc[0] == "maple"  # an observed entry is returned as given
    assert filled["kind"].tolist()[1:] == new["kind"].tolist()[1:]
    pd.testing.assert_frame_equal(filled.drop(columns="kind"), expected.drop(columns="kind"))
    # A row with nothing else observed is filled as a row with nothing observed.
    # The label, and nothing else observed (mask: pandas 3 sets no None into a bool column).
    only_unseen = new.iloc[:1].mask(lambda f: np.broadcast_to(f.columns != "kind", f.shape))
    with pytest.warns(UserWarning, match="'kind' was not seen in fit"):
        filled = imputer.transform(only_unseen)
    empty = imputer.transform(only_unseen.assign(kind=None))
    assert filled["kind"].iloc[0] == "maple"
    pd.testing.assert_frame_equal(filled.drop(columns="kind"), empty.drop(columns="kind"))
