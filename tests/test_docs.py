"""The documentation site lists every public name and builds without a warning."""

import importlib
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

import skvae
import skvae.datasets
import skvae.plotting

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_reference_lists_every_public_name():
    listed, module = set(), None
    for line in (ROOT / "docs" / "api.rst").read_text().splitlines():
        if line.startswith(".. currentmodule::"):
            module = line.split()[-1]
        elif re.fullmatch(r"   \w+", line):
            listed.add(f"{module}.{line.strip()}")
    public = {f"skvae.{name}" for name in skvae.__all__ if name != "__version__"}
    public |= {f"skvae.plotting.{name}" for name in skvae.plotting.__all__}
    public |= {f"skvae.datasets.{name}" for name in skvae.datasets.__all__}
    try:
        serving = importlib.import_module("skvae.serving")
    except ImportError:  # without mlflow: the page lists it all the same
        listed = {name for name in listed if not name.startswith("skvae.serving.")}
    else:
        public |= {f"skvae.serving.{name}" for name in serving.__all__}
    assert listed == public


@pytest.fixture
def sources(tmp_path):
    """A copy of what the site is built from, so the build writes nothing into the checkout."""
    built = shutil.ignore_patterns("_build", "auto_examples", "generated", "sg_execution_times.*")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=built)
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=built)
    shutil.copy(ROOT / "README.md", tmp_path)
    return tmp_path / "docs"


@pytest.mark.slow
def test_docs_build_without_warnings_with_the_gallery_unexecuted(sources, tmp_path):
    # `make docs` also runs the gallery's examples; the tests run them on small settings.
    for name in ("sphinx", "numpydoc", "sphinx_gallery", "myst_parser", "furo"):
        pytest.importorskip(name, reason='needs the docs extra: pip install "skvae[docs]"')
    html = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-D", "plot_gallery=0", str(sources), str(html)]
    build = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    for page in ("index", "api", "user_guide/persistence", "auto_examples/index"):
        assert (html / f"{page}.html").is_file(), page
    # The API reference has a page per public name, generated from its docstring.
    estimator = (html / "generated" / "skvae.VAEEstimator.html").read_text()
    assert "skvae.VAEEstimator.fit" in estimator and "n_components" in estimator


def _fitted_attributes(estimator, X):
    estimator.fit(X)
    return {name for name in vars(estimator) if name.endswith("_") and not name.startswith("_")}


def test_every_fitted_attribute_is_documented():
    from numpydoc.docscrape import NumpyDocString

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "label": rng.choice(["a", "b"], 40)})
    numbers = rng.normal(size=(40, 3))
    numbers[::7, 1] = np.nan
    cases = [
        (skvae.VAEEstimator(likelihood="auto", max_iter=2), frame),
        (skvae.VAEOutlierDetector(likelihood="auto", max_iter=2), frame),
        (skvae.VAEImputer(skvae.VAEEstimator(max_iter=2), n_estimators=1), numbers),
    ]
    for estimator, X in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = _fitted_attributes(estimator, X)
        sections = NumpyDocString(type(estimator).__doc__)["Attributes"]
        documented = {name for p in sections for name in p.name.split(", ")}
        assert fitted <= documented, (type(estimator).__name__, sorted(fitted - documented))


def test_contributing_maps_every_module_of_the_package():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    mapped = set(re.findall(r"^(skvae/[\w/]+\.py) ", text, flags=re.MULTILINE))
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "skvae").rglob("*.py")}
    assert mapped == modules
