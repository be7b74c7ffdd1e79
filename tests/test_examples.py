"""Every example runs, on small settings, so none rots."""

import ast
import importlib.util
import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import nbinom, norm
from sklearn.exceptions import ConvergenceWarning

pytest.importorskip("matplotlib")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Every gallery script: a new one is run by the tests without being listed anywhere.
GALLERY = sorted(EXAMPLES.glob("plot_*.py"))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_digits_prints_scores_and_writes_figures(tmp_path, capsys):
    demo = _load("demo_digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = demo.main(out=tmp_path, max_iter=5)
    assert set(scores) == {"PCA", "FactorAnalysis", "VAEEstimator"}
    printed = capsys.readouterr().out
    assert "VAEEstimator" in printed and "nats" in printed
    for name in ("digits_latent_space.png", "digits_samples.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def _run_readme_block(after_heading):
    readme = (EXAMPLES.parent / "README.md").read_text()
    code = readme.split(after_heading, 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_readme_usage_example_runs():
    namespace = _run_readme_block("## Usage")
    assert namespace["Z"].shape == (1797, 2)
    assert namespace["X_new"].shape == (10, 64) and namespace["X_mean"].shape == (1797, 64)
    assert namespace["log_px"].shape == (1797,)
    # The 8-D codes carry the digit: a linear classifier on them is right most of the time.
    assert namespace["clf"].score(namespace["X"], namespace["y"]) > 0.8


def test_readme_search_across_likelihood_families_runs():
    namespace = _run_readme_block("## Likelihoods, and which scores can be compared")
    grid = namespace["grid"]
    assert len(grid.cv_results_["params"]) == 3
    assert grid.best_score_ > 0.8


@pytest.fixture
def one_torch_thread():
    # The quick settings are tiny models: on a loaded 2-core machine a second intra-op
    # thread only waits at barriers. The examples' results do not depend on it.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_the_gallery_has_its_examples():
    names = {path.name for path in GALLERY}
    assert {
        "plot_latent_space_digits.py",
        "plot_latent_traversal.py",
        "plot_grid_search.py",
        "plot_count_data.py",
        "plot_training_curves.py",
        "plot_imputation.py",
    } <= names


def _numbers(results):
    """Every number in what an example's main returns (dicts, arrays, floats)."""
    if isinstance(results, dict):
        return [x for value in results.values() for x in _numbers(value)]
    array = np.asarray(results)
    return list(array.ravel().astype(float)) if array.dtype.kind in "iuf" else []


@pytest.mark.parametrize("script", GALLERY, ids=lambda path: path.name)
def test_example_runs_on_quick_settings_and_writes_its_figures(
    script, tmp_path, capsys, one_torch_thread
):
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    assert docstring and f"python examples/{script.name}" in docstring and "--quick" in docstring
    example = _load(script.stem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = example.main(quick=True, out_dir=tmp_path / "out")
    numbers = _numbers(results)
    assert numbers and np.all(np.isfinite(numbers)), "main returns what it measured"
    lines = capsys.readouterr().out.splitlines()
    written = [Path(line[len("wrote ") :]) for line in lines if line.startswith("wrote ")]
    assert written, "each figure is announced as 'wrote <path>'"
    assert set(written) == set((tmp_path / "out").glob("*.png"))
    for path in written:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


@pytest.mark.parametrize("script", GALLERY, ids=lambda path: path.name)
def test_example_command_line_offers_quick_and_out(script, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert "--quick" in usage and "--out" in usage


def test_count_example_truth_matches_a_direct_sum_over_the_grid():
    example = _load("plot_count_data")
    X, _, params = example.make_counts(50, n_features=5, random_state=1)
    step = 0.25
    fast = example.true_log_likelihood(X[:2], params, step=step)
    # The same integral, term by term with scipy's negative binomial.
    weights, offsets = params
    axis = np.arange(-5.0, 5.0 + step / 2, step)
    for row, expected in zip(X[:2], fast, strict=True):
        terms = []
        for z1 in axis:
            for z2 in axis:
                mean = np.exp(offsets + 1.5 * np.tanh([z1, z2]) @ weights)
                p = example.THETA / (example.THETA + mean)
                log_px = nbinom.logpmf(row, example.THETA, p).sum()
                terms.append(log_px + norm.logpdf(z1) + norm.logpdf(z2) + 2 * np.log(step))
        assert np.isclose(expected, np.logaddexp.reduce(terms), rtol=0, atol=1e-8)


def test_readme_grid_search_on_a_dask_cluster_runs():
    pytest.importorskip("distributed")
    namespace = _run_readme_block("### Many fits: GridSearchCV on a dask cluster")
    grid = namespace["grid"]
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert namespace["cluster"].status.name == "closed"


def test_readme_incremental_over_a_dask_array_runs():
    pytest.importorskip("dask_ml")
    namespace = _run_readme_block("### More rows than memory: Incremental over a dask array")
    assert namespace["Z"].shape == (8000, 2)
    assert namespace["vae"].n_iter_ == 24 and len(namespace["vae"].loss_curve_) == 24


def test_readme_skops_recipe_runs_and_leaves_no_file(capsys):
    pytest.importorskip("skops")
    namespace = _run_readme_block("### Saving and sharing models")
    assert namespace["untrusted"] == ["skvae._estimator.VAEEstimator"]
    assert "skvae._estimator.VAEEstimator" in capsys.readouterr().out
    assert not namespace["path"].exists()


def test_readme_missing_values_example_runs():
    namespace = _run_readme_block("## Missing values")
    assert namespace["log_p_observed"].shape == (5,)
    assert np.all(np.isfinite(namespace["log_p_observed"]))
    assert namespace["accuracy"] > 0.9
