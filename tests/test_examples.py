"""Every example and every python code block of the README and the user guide runs."""

import ast
import importlib.util
import runpy
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import nbinom, norm
from sklearn.exceptions import ConvergenceWarning

plt = pytest.importorskip("matplotlib.pyplot")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Every gallery script: a new one is run by the tests without being listed anywhere.
GALLERY = sorted(EXAMPLES.glob("plot_*.py"))
# The pages whose python code blocks users copy: each block is run by one test below.
_BUILT = {"_build", "auto_examples", "generated"}  # written by `make docs`, not pages users read
_DOCS_PAGES = [path for path in ROOT.glob("docs/**/*.md") if not _BUILT & set(path.parts)]
CODE_PAGES = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in _DOCS_PAGES)]
USAGE = ("README.md", "## Usage")
ESTIMATOR = ("docs/user_guide/estimator.md", "# What the estimator does")
SEARCH_ACROSS_FAMILIES = ("docs/user_guide/likelihoods.md", "## Which scores compare")
MISSING_VALUES = ("docs/user_guide/missing_values.md", "# Missing values")
MIXED_IMPUTATION = ("docs/user_guide/missing_values.md", "## Tables with labels")
TABLES = ("docs/user_guide/tables.md", "# Tables: data frames in, data frames out")
COUNTS = "docs/user_guide/counts.md"
COUNTS_BLOCKS = [
    (COUNTS, "## Library size"),
    (COUNTS, "## Covariates: batch correction"),
    (COUNTS, "## Topics: CountVectorizer to a multinomial VAE"),
]
DASK_CLUSTER = ("docs/user_guide/scaling_out.md", "## Many fits: GridSearchCV on a dask cluster")
INCREMENTAL = (
    "docs/user_guide/scaling_out.md",
    "## More rows than memory: Incremental over a dask array",
)
CLUSTERING = ("docs/user_guide/clustering.md", "# Clustering")
SKOPS = ("docs/user_guide/persistence.md", "## Sharing: skops files")
MLFLOW = ("docs/user_guide/persistence.md", "## Tracking and serving: mlflow")
RUN_BY_TESTS = {
    USAGE,
    ESTIMATOR,
    SEARCH_ACROSS_FAMILIES,
    MISSING_VALUES,
    MIXED_IMPUTATION,
    TABLES,
    *COUNTS_BLOCKS,
    DASK_CLUSTER,
    INCREMENTAL,
    CLUSTERING,
    SKOPS,
    MLFLOW,
}


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_definition(node):
    """Whether a statement imports, defines a function or class, or sets an upper-case name."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
        return True
    return isinstance(node, ast.Assign) and all(
        isinstance(target, ast.Name) and target.id.isupper() for target in node.targets
    )


def _definitions(name):
    """The imports, functions and constants of a gallery script, without running its cells."""
    path = EXAMPLES / f"{name}.py"
    tree = ast.parse(path.read_text())
    tree.body = [node for node in tree.body if _is_definition(node)]
    namespace = {"__name__": name}
    exec(compile(tree, str(path), "exec"), namespace)
    return SimpleNamespace(**namespace)


@pytest.mark.slow
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


def _python_blocks(page):
    """(heading, code) of every python code block of a markdown page, in order."""
    blocks, heading, fence, code = [], None, None, []
    for line in (ROOT / page).read_text().splitlines():
        if line.startswith("```"):
            if fence is None:
                fence, code = line[3:].strip(), []
            else:
                if fence == "python":
                    blocks.append((heading, "\n".join(code)))
                fence = None
        elif fence is not None:
            code.append(line)
        elif line.startswith("#"):
            heading = line
    return blocks


def _run_block(page, heading):
    """Run the one python code block of a page's section; return its variables."""
    codes = [code for title, code in _python_blocks(page) if title == heading]
    assert len(codes) == 1, f"one python block under {heading!r} in {page}"
    # "__main__", as in a script: classes a block defines pickle by value.
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(compile(codes[0], page, "exec"), namespace)
    return namespace


def test_every_python_block_of_the_readme_and_the_guide_is_run_by_a_test():
    found = {(page, heading) for page in CODE_PAGES for heading, _ in _python_blocks(page)}
    assert found == RUN_BY_TESTS


@pytest.mark.slow
def test_guide_estimator_example_runs(capsys):
    namespace = _run_block(*ESTIMATOR)
    vae, X_test = namespace["vae"], namespace["X_test"]
    assert namespace["Z"].shape == (len(X_test), 2)
    assert namespace["X_mean"].shape == X_test.shape and namespace["X_new"].shape == (5, 13)
    score = float(capsys.readouterr().out.split()[0])
    np.testing.assert_allclose(score, vae.score_samples(X_test).mean())


@pytest.mark.slow
def test_guide_clustering_example_runs():
    namespace = _run_block(*CLUSTERING)
    X, labels = namespace["X"], namespace["labels"]
    np.testing.assert_allclose(namespace["proba"].sum(axis=1), 1.0)
    assert namespace["centres"].shape == (3, X.shape[1])
    assert namespace["new_rows"].shape == (10, X.shape[1])
    # The blobs are far apart: the drawn rows lie nearest their own cluster's rows.
    own = X[labels == labels[0]].mean(axis=0)
    others = [X[labels == c].mean(axis=0) for c in set(labels) - {labels[0]}]
    distance = np.linalg.norm(namespace["new_rows"].mean(axis=0) - own)
    assert all(distance < np.linalg.norm(namespace["new_rows"].mean(axis=0) - o) for o in others)


@pytest.mark.slow
def test_readme_usage_example_runs():
    namespace = _run_block(*USAGE)
    assert namespace["Z"].shape == (1797, 2)
    assert namespace["X_new"].shape == (10, 64) and namespace["X_mean"].shape == (1797, 64)
    assert namespace["log_px"].shape == (1797,)
    # The 8-D codes carry the digit: a linear classifier on them is right most of the time.
    assert namespace["clf"].score(namespace["X"], namespace["y"]) > 0.8


@pytest.mark.slow
def test_guide_search_across_likelihood_families_runs():
    namespace = _run_block(*SEARCH_ACROSS_FAMILIES)
    grid = namespace["grid"]
    assert len(grid.cv_results_["params"]) == 3
    assert grid.best_score_ > 0.8


def test_the_gallery_has_its_examples():
    names = {path.name for path in GALLERY}
    assert {
        "plot_latent_space_digits.py",
        "plot_latent_traversal.py",
        "plot_grid_search.py",
        "plot_count_data.py",
        "plot_training_curves.py",
        "plot_imputation.py",
        "plot_outliers.py",
        "plot_synthetic_tables.py",
        "plot_batch_correction.py",
        "plot_clustering.py",
    } <= names


@pytest.mark.parametrize("script", GALLERY, ids=lambda path: path.name)
def test_example_docstring_opens_with_a_title_for_the_gallery(script):
    # sphinx-gallery takes a page's title from the docstring's first, underlined line.
    title, underline = ast.get_docstring(ast.parse(script.read_text())).splitlines()[:2]
    assert title.strip() and underline == "=" * len(title)


@pytest.mark.parametrize("script", GALLERY, ids=lambda path: path.name)
def test_example_is_cells_of_prose_then_code(script):
    # sphinx-gallery shows the comment lines that open a "# %%" cell as text, then runs the
    # cell's code by itself and puts its output and open figures below it.
    parser = pytest.importorskip("sphinx_gallery.py_source_parser")
    _, blocks = parser.split_code_and_text_blocks(script)
    kinds = "".join(block.type[0] for block in blocks)  # t: text, c: code
    assert kinds.startswith("tt") and kinds.endswith("c"), "docstring, then a cell of prose"
    assert kinds.count("c") >= 3 and "cc" not in kinds, "each code cell follows its prose"
    for block in blocks[1:]:
        if block.type == "text":
            assert len(block.content.split()) >= 10, f"prose of line {block.lineno} says little"
        else:
            compile(block.content, f"{script}:{block.lineno}", "exec")


@pytest.mark.parametrize("script", GALLERY, ids=lambda path: path.name)
def test_example_command_line_works_without_its_docstring(script, capsys, monkeypatch):
    # sphinx-gallery runs a script's code without its docstring, with __doc__ == "".
    tree = ast.parse(script.read_text())
    del tree.body[0]
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        exec(compile(tree, str(script), "exec"), {"__name__": "__main__", "__doc__": ""})
    assert exit_info.value.code == 0
    assert "--out" in capsys.readouterr().out


def _numbers(results):
    """Every number in what an example's main returns (dicts, arrays, floats)."""
    if isinstance(results, dict):
        return [x for value in results.values() for x in _numbers(value)]
    array = np.asarray(results)
    return list(array.ravel().astype(float)) if array.dtype.kind in "iuf" else []


@pytest.mark.slow
@pytest.mark.parametrize("script", GALLERY, ids=lambda path: path.name)
def test_example_runs_on_quick_settings_and_writes_its_figures(
    script, tmp_path, capsys, monkeypatch
):
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    assert docstring and f"python examples/{script.name}" in docstring and "--quick" in docstring
    monkeypatch.setattr(sys, "argv", [str(script), "--quick", "--out", str(tmp_path / "out")])
    plt.close("all")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            namespace = runpy.run_path(str(script), run_name="__main__")
        # sphinx-gallery's matplotlib scraper takes the figures a script leaves open.
        n_open = len(plt.get_fignums())
    finally:
        plt.close("all")
    numbers = _numbers(namespace["results"])
    assert numbers and np.all(np.isfinite(numbers)), "results holds what the script measured"
    lines = capsys.readouterr().out.splitlines()
    written = [Path(line[len("wrote ") :]) for line in lines if line.startswith("wrote ")]
    assert written, "each figure is announced as 'wrote <path>'"
    assert set(written) == set((tmp_path / "out").glob("*.png"))
    assert n_open == len(written), "each figure written is left open for the gallery"
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
    example = _definitions("plot_count_data")
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


@pytest.mark.slow
def test_guide_grid_search_on_a_dask_cluster_runs():
    pytest.importorskip("distributed")
    namespace = _run_block(*DASK_CLUSTER)
    grid = namespace["grid"]
    assert len(grid.cv_results_["params"]) == 4
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert namespace["cluster"].status.name == "closed"


@pytest.mark.slow
def test_guide_incremental_over_a_dask_array_runs():
    pytest.importorskip("dask_ml")
    namespace = _run_block(*INCREMENTAL)
    assert namespace["Z"].shape == (8000, 2)
    assert namespace["vae"].n_iter_ == 24 and len(namespace["vae"].loss_curve_) == 24


@pytest.mark.slow
def test_guide_skops_recipe_runs_and_leaves_no_file(capsys):
    pytest.importorskip("skops")
    namespace = _run_block(*SKOPS)
    assert namespace["untrusted"] == ["skvae._estimator.VAEEstimator"]
    assert "skvae._estimator.VAEEstimator" in capsys.readouterr().out
    assert not namespace["path"].exists()


@pytest.mark.slow
def test_guide_mlflow_recipe_serves_transform(tmp_path, monkeypatch):
    # mlflow is in the test extra, not a dependency of skvae.
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("mlflow.models")
    pytest.importorskip("skops")
    monkeypatch.chdir(tmp_path)  # mlflow's default tracking store is the working directory
    # MLflow infers a model's requirements by loading it in a subprocess: its work, not the
    # recipe's, and the slowest part of logging.
    monkeypatch.setattr(mlflow.models, "infer_pip_requirements", lambda *a, **k: ["skvae"])
    namespace = _run_block(*MLFLOW)
    vae, X = namespace["vae"], namespace["X"]
    assert type(namespace["loaded"]) is type(vae)
    np.testing.assert_array_equal(namespace["loaded"].transform(X), vae.transform(X))
    np.testing.assert_array_equal(np.asarray(namespace["Z"]), vae.transform(X))


@pytest.mark.slow
def test_guide_missing_values_example_runs():
    namespace = _run_block(*MISSING_VALUES)
    assert namespace["log_p_observed"].shape == (5,)
    assert np.all(np.isfinite(namespace["log_p_observed"]))
    assert namespace["accuracy"] > 0.9


@pytest.mark.slow
def test_guide_mixed_imputation_example_runs(capsys):
    namespace = _run_block(*MIXED_IMPUTATION)
    frame, filled = namespace["frame"], namespace["filled"]
    assert filled.dtypes.to_dict() == frame.dtypes.to_dict()
    assert not filled.isna().any().any() and capsys.readouterr().out.strip().endswith(" 0")


@pytest.mark.slow
def test_guide_tables_example_runs():
    pytest.importorskip("palmerpenguins")
    namespace = _run_block(*TABLES)
    penguins, synthetic = namespace["penguins"], namespace["synthetic"]
    assert list(synthetic.columns) == list(penguins.columns)
    assert synthetic.dtypes.to_dict() == penguins.dtypes.to_dict()
    assert set(synthetic["species"]) <= set(penguins["species"].dropna())
    assert (namespace["adelie"]["species"] == "Adelie").all()


@pytest.mark.slow
def test_guide_counts_examples_run_in_order():
    # The page's blocks build on each other, as a reader runs them.
    namespace = {"__name__": "__main__"}
    for page, heading in COUNTS_BLOCKS:
        (code,) = [code for title, code in _python_blocks(page) if title == heading]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            exec(compile(code, page, "exec"), namespace)
    assert namespace["Z"].shape == (400, 4)
    corrected = namespace["corrected"]
    assert list(corrected.columns) == list(namespace["frame"].columns)
    assert (corrected["batch"] == 0).all()
    assert namespace["topics"][-1].n_features_in_ == 8  # the eight words
