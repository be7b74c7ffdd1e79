"""Every example runs, on small settings, so none rots."""

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

pytest.importorskip("matplotlib")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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
    assert namespace["X_new"].shape == (10, 64)
    assert namespace["grid"].best_score_ > 0.8


def test_readme_search_across_likelihood_families_runs():
    namespace = _run_readme_block("## Likelihoods, and which scores can be compared")
    grid = namespace["grid"]
    assert len(grid.cv_results_["params"]) == 3
    assert grid.best_score_ > 0.8


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
