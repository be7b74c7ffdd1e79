"""Tables as users have them: frames with labels in and out, realistic and conditional draws."""

import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from skvae import VAEEstimator
from skvae._likelihoods import Categorical, HurdleLogNormal

pd = pytest.importorskip("pandas")
# Short fits: what is tested is the data path, not convergence.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = {"hidden_layer_sizes": (16,), "max_iter": 40, "random_state": 0}


def _table(n=300, seed=0):
    """A small mixed frame: strings, a category dtype, booleans, integers, floats, NaN."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(["oak", "pine", "birch"], size=n, p=[0.5, 0.3, 0.2])
    height = np.where(kind == "oak", 20.0, np.where(kind == "pine", 30.0, 15.0))
    height = height + rng.normal(0, 2, n)
    frame = pd.DataFrame(
        {
            "kind": kind,
            "soil": pd.Categorical(rng.choice(["clay", "sand"], n), categories=["sand", "clay"]),
            "healthy": rng.uniform(size=n) < 0.7,
            "year": rng.choice([2007, 2008, 2009], n),
            "rings": rng.integers(20, 200, n),
            "height": height,
            "rainfall": np.where(rng.uniform(size=n) < 0.6, 0.0, rng.lognormal(1.0, 0.8, n)),
        }
    )
    frame.loc[rng.choice(n, 15, replace=False), "height"] = np.nan
    frame.loc[rng.choice(n, 10, replace=False), "kind"] = None
    return frame


def test_hurdle_lognormal_log_prob_matches_scipy():
    rng = np.random.default_rng(0)
    log_loc, log_scale = np.array([0.5, -1.0]), np.array([2.0, 0.5])
    family = HurdleLogNormal(2, log_loc=log_loc.tolist(), log_scale=log_scale.tolist())
    out = torch.from_numpy(rng.normal(size=(6, 6)))
    x = np.array([[0.0, 1.3], [2.5, 0.0], [0.1, 7.0], [0.0, 0.0], [3.0, 0.2], [40.0, 1.0]])
    got = family.log_prob(torch.from_numpy(x), out).numpy()
    o = out.numpy()
    pi = 1 / (1 + np.exp(-o[:, :2]))
    m = log_loc + log_scale * o[:, 2:4]
    sd = log_scale * np.exp(0.5 * o[:, 4:6])
    positive = stats.lognorm.logpdf(np.where(x > 0, x, 1.0), s=sd, scale=np.exp(m))
    expected = np.where(x > 0, np.log(pi) + positive, np.log1p(-pi)).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_hurdle_lognormal_draws_match_its_mean_and_zero_share():
    family = HurdleLogNormal(1, log_loc=[0.0], log_scale=[1.0])
    out = torch.tensor([[0.4, 0.3, -0.5]], dtype=torch.float64).expand(200_000, 3)
    draws = family.sample(out, torch.Generator().manual_seed(0)).numpy().ravel()
    pi = 1 / (1 + np.exp(-0.4))
    assert abs(np.mean(draws == 0) - (1 - pi)) < 4 * np.sqrt(pi * (1 - pi) / draws.size)
    # Mean of a log-normal: exp(m + s^2 / 2), computed here, not by the family.
    expected = pi * np.exp(0.3 + 0.5 * np.exp(-0.5))
    assert abs(draws.mean() - expected) < 4 * draws.std() / np.sqrt(draws.size)
    np.testing.assert_allclose(family.mean(out[:1]).item(), expected, rtol=1e-12)


def test_categorical_on_any_values_uses_their_positions():
    family = Categorical(2, n_categories=[3, 2], values=[[2007.0, 2008.0, 2009.0], [-1.0, 5.5]])
    out = torch.randn(4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.tensor([[2007.0, 5.5], [2009.0, -1.0], [2008.0, 5.5], [2009.0, 5.5]])
    log_p = [torch.log_softmax(out[:, :3], -1), torch.log_softmax(out[:, 3:], -1)]
    expected = log_p[0][torch.arange(4), [0, 2, 1, 2]] + log_p[1][torch.arange(4), [1, 0, 1, 1]]
    torch.testing.assert_close(family.log_prob(x.double(), out), expected)
    draws = family.sample(out.expand(500, 4, 5).reshape(-1, 5), torch.Generator())
    assert set(draws[:, 0].tolist()) == {2007.0, 2008.0, 2009.0}
    assert set(draws[:, 1].tolist()) == {-1.0, 5.5}


def test_frame_round_trip_keeps_names_dtypes_and_labels():
    frame = _table()
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    assert vae.likelihood_ == {
        "categorical": ["kind", "soil", "year"],
        "bernoulli": ["healthy"],
        "gaussian": ["rings", "height"],
        "hurdle_lognormal": ["rainfall"],
    }
    assert vae.categories_["kind"].tolist() == ["birch", "oak", "pine"]
    assert vae.categories_["soil"].tolist() == ["sand", "clay"]  # the dtype's own order
    assert vae.categories_["year"].tolist() == [2007, 2008, 2009]
    draws = vae.sample(400, random_state=0, missing=False)
    assert list(draws.columns) == list(frame.columns)
    assert draws.dtypes.to_dict() == frame.dtypes.to_dict()
    assert set(draws["kind"]) == {"birch", "oak", "pine"}
    assert list(draws["soil"].cat.categories) == ["sand", "clay"]
    assert set(draws["year"]) <= {2007, 2008, 2009}
    means = vae.inverse_transform(vae.transform(frame[:5]))
    assert (
        list(means.columns) == list(frame.columns)
        and means["kind"].isin(["birch", "oak", "pine"]).all()
    )
    # The same model scores the frame and the array of its codes alike.
    assert np.isfinite(vae.score_samples(frame)).all()


def test_frame_round_trip_in_polars():
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(_table().astype({"soil": str}))
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    draws = vae.sample(50, random_state=0, missing=False)
    assert isinstance(draws, pl.DataFrame)
    assert draws.columns == frame.columns
    assert draws.dtypes == frame.dtypes
    assert set(draws["kind"].to_list()) <= {"birch", "oak", "pine"}


def test_draws_stay_in_the_training_range_and_on_the_integer_grid():
    frame = _table()
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    draws = vae.sample(3000, random_state=1, missing=False)
    for column in ("rings", "height", "rainfall"):
        low, high = frame[column].min(), frame[column].max()
        assert draws[column].between(low, high).all(), column
    assert (draws["rings"] == np.round(draws["rings"])).all()
    free = vae.sample(3000, random_state=1, constrain=False, missing=False)
    # Without constraints a Gaussian's draws leave the range and the grid: the check can fail.
    outside = ~free["height"].between(frame["height"].min(), frame["height"].max())
    assert outside.any() and (free["rings"] != np.round(free["rings"])).any()


def test_a_column_of_a_few_fractional_values_draws_only_those_values():
    # Binned ages and durations given as midpoints (statsmodels' fair: 0.5, 2.5, ..., 23)
    # are numbers, not codes, for likelihood="auto"; their draws stay on the bins.
    rng = np.random.default_rng(0)
    bins = np.array([0.5, 2.5, 6.0, 9.0, 13.0, 16.5, 23.0])
    years = rng.choice(bins, 600)
    frame = pd.DataFrame({"years": years, "age": 17 + years + rng.normal(0, 2, 600)})
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    assert vae.likelihood_["gaussian"] == ["years", "age"]
    draws = vae.sample(2000, random_state=0, missing=False)
    assert set(draws["years"]) <= set(bins) and len(set(draws["years"])) >= 5
    assert len(set(draws["age"])) > 100  # many values: rounded to the data's decimals only
    free = vae.sample(2000, random_state=0, missing=False, constrain=False)
    assert not set(free["years"]) <= set(bins)


def test_missing_draws_follow_each_columns_missing_rate():
    frame = _table(n=600)
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    draws = vae.sample(4000, random_state=0, missing=True)
    for column, rate in frame.isna().mean().items():
        se = np.sqrt(max(rate * (1 - rate), 1e-4) / 4000)
        assert abs(draws[column].isna().mean() - rate) < 4 * se, column
    assert not vae.sample(500, random_state=0, missing=False).isna().any().any()
    free = vae.sample(4000, random_state=0, missing=True, constrain=False)
    assert abs(free["height"].isna().mean() - frame["height"].isna().mean()) < 0.02


def test_missing_auto_draws_gaps_for_frames_with_gaps_and_the_default_warns():
    frame = _table(n=600)
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    draws = vae.sample(4000, random_state=0, missing="auto")
    np.testing.assert_array_equal(
        draws.isna().to_numpy(), vae.sample(4000, random_state=0, missing=True).isna().to_numpy()
    )
    assert draws["height"].isna().any()
    with pytest.warns(FutureWarning, match="missing='auto'"):
        default = vae.sample(50, random_state=0)
    assert not default.isna().any().any()  # until 0.3, complete rows
    # A frame without gaps, or an array with them: "auto" draws none, and nothing warns.
    complete = VAEEstimator(likelihood="auto", **FAST).fit(frame.dropna())
    X = frame[["height", "rings"]].to_numpy(dtype=float)
    array = VAEEstimator(**FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert not complete.sample(500, random_state=0, missing="auto").isna().any().any()
        assert not np.isnan(array.sample(500, random_state=0, missing="auto")).any()
        complete.sample(5), array.sample(5)
    with pytest.raises(ValueError, match="missing must be True, False or 'auto'"):
        vae.sample(5, missing="yes")


def test_conditional_draws_follow_the_given_value():
    frame = _table(n=600)
    # 150 epochs: draws that ignored the given kind would miss the pines' mean by about 8.
    vae = VAEEstimator(likelihood="auto", hidden_layer_sizes=(32,), max_iter=150, random_state=0)
    draws = vae.fit(frame).sample(400, random_state=0, given={"kind": "pine"}, missing=False)
    assert (draws["kind"] == "pine").all()
    # Pines are the tallest (30 against 15-20): the draws given "pine" say so.
    real = frame.loc[frame["kind"] == "pine", "height"].mean()
    assert abs(draws["height"].mean() - real) < abs(frame["height"].mean() - real) / 2
    with pytest.raises(ValueError, match="'maple' is not a category"):
        vae.sample(5, given={"kind": "maple"})


def test_labels_need_a_categorical_family():
    frame = _table()
    with pytest.raises(ValueError, match=r"\['kind', 'soil'\] of X hold labels.*'auto'"):
        VAEEstimator(**FAST).fit(frame)


def test_a_label_unseen_in_fit_is_treated_as_missing_and_partial_fit_refuses_it():
    # A rare label that the training split happened to lack (a state, a site) made
    # transform and score raise on an ordinary test split; numbers unseen in a categorical
    # column were already treated as missing.
    frame = _table()
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    new = frame[:3].copy()
    new.loc[0, "kind"] = "maple"
    as_missing = new.copy()
    as_missing.loc[0, "kind"] = None
    message = r"1 value of categorical column 'kind' was not seen in fit: treated as missing"
    with pytest.warns(UserWarning, match=message):
        Z = vae.transform(new)
    np.testing.assert_array_equal(Z, vae.transform(as_missing))
    with pytest.warns(UserWarning, match="'kind' was not seen in fit"):
        scores = vae.score_samples(new)
    np.testing.assert_array_equal(scores, vae.score_samples(as_missing))
    with pytest.raises(ValueError, match="Column 'kind' has the category 'maple'"):
        vae.partial_fit(new)
    # The label, and nothing else observed (mask: pandas 3 sets no None into a bool column).
    only_unseen = new[:1].mask(lambda f: np.broadcast_to(f.columns != "kind", f.shape))
    with pytest.warns(UserWarning, match="'kind' was not seen in fit"):
        with pytest.raises(ValueError, match="Row 0 of X has no value the model can use"):
            vae.transform(only_unseen)


def test_set_output_pandas_gives_frames_for_arrays_too():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    vae = VAEEstimator(**FAST).set_output(transform="pandas").fit(X)
    draws = vae.sample(5, random_state=0)
    assert isinstance(draws, pd.DataFrame) and list(draws.columns) == ["x0", "x1", "x2"]
    assert isinstance(vae.transform(X[:2]), pd.DataFrame)
    assert isinstance(VAEEstimator(**FAST).fit(X).sample(2), np.ndarray)


def test_zero_heavy_column_keeps_its_zeros():
    rng = np.random.default_rng(0)
    n = 1000
    amount = np.where(rng.uniform(size=n) < 0.68, 0.0, rng.lognormal(0.5, 1.0, n))
    frame = pd.DataFrame({"amount": amount, "other": rng.normal(size=n)})
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    assert vae.likelihood_["hurdle_lognormal"] == ["amount"]
    draws = vae.sample(4000, random_state=0)["amount"]
    assert abs(np.mean(draws == 0) - 0.68) < 0.05
    assert stats.ks_2samp(draws[draws > 0], amount[amount > 0]).statistic < 0.1


def test_a_saved_frame_model_gives_the_same_frames():
    import pickle

    frame = _table()
    vae = VAEEstimator(likelihood="auto", **FAST).fit(frame)
    loaded = pickle.loads(pickle.dumps(vae))
    pd.testing.assert_frame_equal(
        loaded.sample(20, random_state=0, missing=False),
        vae.sample(20, random_state=0, missing=False),
    )
    np.testing.assert_array_equal(loaded.categories_["kind"], vae.categories_["kind"])


def test_draws_keep_the_decimals_of_the_training_values():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "tenths": np.round(rng.normal(40, 5, 300), 1),
            "cents": np.round(rng.uniform(0, 20, 300), 2),
            "raw": rng.normal(size=300),
        }
    )
    vae = VAEEstimator(**FAST).fit(frame)
    draws = vae.sample(500, random_state=0)
    np.testing.assert_array_equal(draws["tenths"], np.round(draws["tenths"], 1))
    np.testing.assert_array_equal(draws["cents"], np.round(draws["cents"], 2))
    assert (draws["cents"] != np.round(draws["cents"], 1)).any()  # not rounded further
    assert (draws["raw"] != np.round(draws["raw"], 6)).any()  # no grid: left as drawn


def test_a_frames_columns_get_noise_floors_of_their_own():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(0, 1, 400), rng.normal(0, 1000, 400)])
    frame = pd.DataFrame(X, columns=["millimetres", "grams"])
    # An array's columns share units: the floor is 1e-3 of the largest variance, 1e6.
    assert VAEEstimator(**FAST).fit(X).noise_variance_[0] > 0.5e-3 * X[:, 1].var()
    # A frame's columns have their own: the small column keeps a noise below its variance.
    assert VAEEstimator(**FAST).fit(frame).noise_variance_[0] < 1.5 * X[:, 0].var()
