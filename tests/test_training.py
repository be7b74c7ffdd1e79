"""Training behaviour: KL warm-up, progress output, collapse diagnostics."""

import warnings
from unittest import mock

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEEstimator
from skvae._training import SparseInputs, TrainingConfig, _kl_weight


def test_kl_weight_ramps_linearly_to_beta():
    config = TrainingConfig(beta=2.0, kl_warmup_iter=4)
    assert [_kl_weight(config, e) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert _kl_weight(TrainingConfig(beta=0.5), 0) == 0.5


def test_early_stopping_waits_for_the_end_of_the_warm_up():
    X = load_digits().data[:300]
    # tol so large that no epoch counts as progress: without the warm-up rule this stops
    # after n_iter_no_change + 2 = 3 epochs.
    vae = VAEEstimator(kl_warmup_iter=20, tol=1e9, n_iter_no_change=1, random_state=0)
    vae.fit(X)
    assert vae.n_iter_ == 20 + 2
    # The best weights are chosen after the ramp, when the objective is the true ELBO.
    assert vae.best_validation_score_ == max(vae.validation_scores_[19:])


def test_verbose_shows_progress_and_quiet_prints_nothing(capsys):
    X = load_digits().data[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        VAEEstimator(max_iter=3, random_state=0).fit(X)
        quiet = capsys.readouterr()
        VAEEstimator(max_iter=3, verbose=1, random_state=0).fit(X)
        loud = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    assert "3/3" in loud.err and "loss" in loud.err and "val_elbo" in loud.err


def test_unused_latent_dimensions_show_as_collapsed():
    # Probabilistic PCA data with 2 true latent dimensions, fitted with 4: the ELBO
    # switches the 2 spare ones off (KL ~ 0, posterior mean constant).
    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 8)) * 2
    X = rng.normal(size=(3000, 2)) @ W + 0.3 * rng.normal(size=(3000, 8))
    vae = VAEEstimator(
        n_components=4,
        hidden_layer_sizes=(),
        covariance_type="spherical",
        learning_rate_init=3e-3,
        max_iter=1000,
        random_state=0,
    ).fit(X)
    assert vae.n_active_components_ == 2
    kl = np.sort(vae.kl_per_component_)
    assert kl[1] < 0.05 and kl[2] > 1.0
    # Active dimensions are those whose posterior mean varies across rows.
    active = vae.transform(X).var(axis=0) > 0.01
    assert active.sum() == 2
    np.testing.assert_array_equal(active, vae.kl_per_component_ > 0.5)


def test_a_large_beta_collapses_the_posterior():
    X = load_digits().data[:400]
    total_kl = {}
    for beta in (1.0, 4.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae = VAEEstimator(beta=beta, max_iter=30, random_state=0).fit(X)
        total_kl[beta] = vae.kl_per_component_.sum()
    # beta weighs the KL term: at 4 it pays to switch the latent space off altogether.
    assert total_kl[1.0] > 1.0 and total_kl[4.0] < 0.1


def test_weight_average_matches_an_exponential_average_computed_by_hand():

    from skvae._module import VAEModule
    from skvae._training import WeightAverage

    module = VAEModule.from_spec(
        {
            "n_features": 2,
            "n_components": 1,
            "hidden_layer_sizes": (),
            "activation": "relu",
            "likelihood": {"name": "bernoulli", "covariance_type": "diag"},
        }
    )
    weight = module.decoder[0].weight
    average = WeightAverage(module, horizon=20)
    expected = weight.detach().clone().numpy()
    for t in range(1, 60):
        with torch.no_grad():
            weight += 1.0  # the weights move; the average follows with a lag
        average.update()
        decay = min(1 - 1 / 20, (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * weight.detach().numpy()
    got = average.average[[p is weight for p in average.params].index(True)].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    before = weight.detach().clone()
    with average.applied():
        np.testing.assert_allclose(weight.detach().numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(weight.detach().numpy(), before.numpy())


def test_bfloat16_precision_trains_to_a_comparable_model():
    X = load_digits().data / 16.0
    scores = {}
    for precision in ("float32", "bfloat16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae = VAEEstimator(
                likelihood="bernoulli", max_iter=20, precision=precision, random_state=0
            ).fit(X[:1500])
        scores[precision] = vae.score(X[1500:])
        assert vae.module_.decoder[0].weight.dtype == torch.float32  # master weights
    # Same model class and budget; mixed precision costs at most a little likelihood.
    assert abs(scores["bfloat16"] - scores["float32"]) < 0.02 * abs(scores["float32"])


def _small_module():
    from skvae._likelihoods import prepare_likelihood
    from skvae._module import VAEModule

    X = load_digits().data[:50]
    config, _, _ = prepare_likelihood(X, "gaussian", "diag")
    torch.manual_seed(0)
    spec = {"n_features": 64, "n_components": 2, "hidden_layer_sizes": (8,)}
    return VAEModule.from_spec({**spec, "activation": "relu", "likelihood": config})


def test_weight_decay_shrinks_network_weights_only():
    from skvae._training import make_optimizer

    module = _small_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = make_optimizer(module, learning_rate_init=0.1, weight_decay=0.5)
    for p in module.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only the decay moves anything
    optimizer.step()
    after = module.state_dict()
    for name, value in before.items():
        is_weight = name.startswith(("encoder", "decoder")) and name.endswith("weight")
        # AdamW's decoupled decay: w <- w (1 - lr * weight_decay).
        expected = value * (1 - 0.1 * 0.5) if is_weight else value
        torch.testing.assert_close(after[name], expected, msg=name)
    assert any(k.startswith("likelihood") for k in before)  # the noise was checked too


def test_no_weight_decay_is_plain_adam():
    from skvae._training import make_optimizer

    ours, reference = _small_module(), _small_module()
    optimizer = make_optimizer(ours, learning_rate_init=0.01)
    adam = torch.optim.Adam(reference.parameters(), lr=0.01)
    x = torch.as_tensor(load_digits().data[:32], dtype=torch.float32) / 16
    eps = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    for module, opt in [(ours, optimizer), (reference, adam)]:
        for _ in range(3):
            opt.zero_grad()
            module.loss(x, eps).backward()
            opt.step()
    pairs = zip(ours.state_dict().items(), reference.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def _run_chooser(step_seconds, n_steps=20, one_thread_steps=3):
    """Drive a ThreadChooser with a fake clock; step_seconds maps thread count -> duration."""
    from skvae._training import ThreadChooser

    clock = [0.0]
    chooser = ThreadChooser(
        2,
        probe_steps=3,
        recheck_seconds=1.0,
        clock=lambda: clock[0],
        one_thread_steps=one_thread_steps,
    )
    used = []
    previous = torch.get_num_threads()
    try:
        for _ in range(n_steps):
            chooser.before_step()
            used.append(torch.get_num_threads())
            clock[0] += step_seconds[torch.get_num_threads()]
            chooser.after_step()
    finally:
        torch.set_num_threads(previous)
    return chooser, used


def test_thread_chooser_keeps_one_thread_when_two_are_slower():
    # As on a loaded machine: two threads wait at their barriers.
    chooser, used = _run_chooser({2: 0.050, 1: 0.002})
    assert used[:6] == [2, 2, 2, 1, 1, 1]  # both settings are probed with real steps
    assert chooser.chosen == 1 and set(used[6:]) == {1}


def test_thread_chooser_keeps_two_threads_when_they_are_faster_and_rechecks():
    chooser, used = _run_chooser({2: 0.010, 1: 0.018}, n_steps=200)
    assert chooser.chosen == 2
    # After recheck_seconds (1 s here) of training the probe runs again.
    assert used.count(1) > 3
    assert used[6:20] == [2] * 14


def test_thread_chooser_times_fewer_steps_on_one_thread():
    # On idle cores the one-thread steps are the slow ones: only 2 of them per probe here.
    chooser, used = _run_chooser({2: 0.010, 1: 0.018}, n_steps=200, one_thread_steps=2)
    assert used[:5] == [2, 2, 2, 1, 1] and used[5:20] == [2] * 15
    assert chooser.chosen == 2
    chooser, used = _run_chooser({2: 0.050, 1: 0.002}, one_thread_steps=2)
    assert chooser.chosen == 1 and set(used[3:]) == {1}


def test_thread_chooser_ignores_the_first_step_and_needs_a_clear_win():
    from skvae._training import ThreadChooser

    chooser = ThreadChooser(2)
    # The first two-thread step paid for a switch; without it two threads are faster.
    assert chooser.choose({2: [1.0, 0.01, 0.01], 1: [0.02, 0.02, 0.02]}) == 2
    # One thread 5% faster is within the timing noise: keep the process's threads.
    assert chooser.choose({2: [0.01, 0.010, 0.010], 1: [0.01, 0.0095, 0.0095]}) == 2
    assert chooser.choose({2: [0.01, 0.010, 0.010], 1: [0.01, 0.005, 0.005]}) == 1


def _bernoulli_module(n_features, missing=False):
    from skvae import VAEModule

    return VAEModule.from_spec(
        {
            "n_features": n_features,
            "n_components": 2,
            "hidden_layer_sizes": (8,),
            "activation": "relu",
            "likelihood": {"name": "bernoulli", "covariance_type": "diag"},
            "missing": missing,
        }
    )


@pytest.mark.parametrize("kind", ["binary", "counts"])
def test_sparse_inputs_give_each_batch_its_non_zero_entries_by_row_and_by_input(kind):
    from scipy.sparse import csc_matrix, csr_matrix

    rng = np.random.default_rng(0)
    if kind == "binary":
        X = (rng.random((300, 100)) < 0.1).astype(np.float32)
    else:
        X = rng.poisson(0.15, size=(300, 100)).astype(np.float32)
    X = torch.from_numpy(X)
    sparse = SparseInputs.build(_bernoulli_module(100), X)
    assert sparse is not None
    assert (sparse.values is None) == (kind == "binary")  # binary: every value is 1
    rows = torch.from_numpy(rng.permutation(300)[:250])
    epoch = sparse.epoch(rows)
    for start in range(0, 250, 64):  # the last batch is short
        batch = sparse.batch(epoch, start, start + 64, "cpu")
        expected = X[rows[start : start + 64]].numpy()
        n_entries = len(batch.columns)
        ones = np.ones(n_entries)
        by_row = csr_matrix(
            (
                ones if batch.values is None else batch.values.numpy(),
                batch.columns.numpy(),
                np.append(batch.row_offsets, n_entries),
            ),
            shape=expected.shape,
        )
        by_input = csc_matrix(
            (
                ones if batch.column_values is None else batch.column_values.numpy(),
                batch.rows.numpy(),
                np.append(batch.column_offsets, n_entries),
            ),
            shape=expected.shape,
        )
        np.testing.assert_array_equal(by_row.toarray(), expected)
        np.testing.assert_array_equal(by_input.toarray(), expected)


def test_sparse_inputs_are_left_to_dense_data_small_inputs_and_mask_models():
    rng = np.random.default_rng(0)
    binary = torch.from_numpy((rng.random((300, 100)) < 0.1).astype(np.float32))
    assert SparseInputs.build(_bernoulli_module(100), binary) is not None
    dense = torch.from_numpy((rng.random((300, 100)) < 0.5).astype(np.float32))
    assert SparseInputs.build(_bernoulli_module(100), dense) is None
    assert SparseInputs.build(_bernoulli_module(100, missing=True), binary) is None
    assert SparseInputs.build(_bernoulli_module(20), binary[:, :20]) is None
    # Dense beyond the first rows that the quick look sees: the full count decides.
    late = torch.cat([binary.repeat(14, 1), dense.repeat(20, 1)])
    assert SparseInputs.build(_bernoulli_module(100), late) is None


def test_fit_with_sparse_inputs_matches_the_dense_fit(monkeypatch):
    import skvae._training as training

    rng = np.random.default_rng(0)
    X = (rng.random((400, 100)) < 0.1).astype(np.float64)
    built = []
    build = SparseInputs.build.__func__

    def spy(cls, module, X_train):
        built.append(build(cls, module, X_train))
        return built[-1]

    def fit():
        vae = VAEEstimator(likelihood="bernoulli", hidden_layer_sizes=(32,), max_iter=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return vae.set_params(random_state=0).fit(X)

    monkeypatch.setattr(SparseInputs, "build", classmethod(spy))
    sparse_fit = fit()
    assert built[-1] is not None
    monkeypatch.setattr(training, "_MAX_SPARSE_DENSITY", -1.0)
    dense_fit = fit()
    assert built[-1] is None
    # The same arithmetic up to the order of the float32 sums.
    np.testing.assert_allclose(sparse_fit.loss_curve_, dense_fit.loss_curve_, rtol=1e-5)
    np.testing.assert_allclose(sparse_fit.transform(X), dense_fit.transform(X), atol=1e-4)
    # The diagnostics encode the training rows through the sparse path too.
    np.testing.assert_allclose(
        sparse_fit.kl_per_component_, dense_fit.kl_per_component_, rtol=1e-4
    )


def test_fused_adamw_step_is_the_optimizers_step():
    from skvae._training import FusedAdamWStep, make_optimizer

    ours, reference = _small_module(), _small_module()
    stepper = FusedAdamWStep(make_optimizer(ours, learning_rate_init=0.01, weight_decay=0.1))
    optimizer = make_optimizer(reference, learning_rate_init=0.01, weight_decay=0.1)
    assert stepper.fast
    x = torch.as_tensor(load_digits().data[:32], dtype=torch.float32) / 16
    eps = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    for n_steps, (module, opt) in enumerate([(ours, stepper), (reference, optimizer)] * 4):
        if n_steps == 4:
            for group in (stepper.optimizer.param_groups, optimizer.param_groups):
                group[0]["lr"] = 0.003  # a changed setting is used from the next step
        opt.zero_grad(set_to_none=True)
        module.loss(x, eps).backward()
        opt.step()
    assert stepper._groups is not None  # the later steps took the direct path
    pairs = zip(ours.state_dict().items(), reference.state_dict().values(), strict=True)
    for (name, a), b in pairs:
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    ours_state = stepper.optimizer.state_dict()["state"]
    for key, value in optimizer.state_dict()["state"].items():
        for field in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours_state[key][field], value[field], rtol=0, atol=0)


@pytest.mark.parametrize("n_rows, every", [(1280, 2), (576, 1)])
def test_weight_average_samples_every_second_step_of_long_epochs(n_rows, every):
    from skvae import _training

    X = np.random.default_rng(0).normal(size=(n_rows, 3))
    vae = VAEEstimator(hidden_layer_sizes=(), batch_size=64, max_iter=3, early_stopping=False)
    updates = []
    real_update = _training.WeightAverage.update

    def counting(self):
        updates.append(1)
        real_update(self)

    with mock.patch.object(_training.WeightAverage, "update", counting):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.set_params(random_state=0).fit(X)
    # 20 steps per epoch: every second one; 9: every one, so each epoch's end counts.
    assert len(updates) == 3 * (n_rows // 64) // every
