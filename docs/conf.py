"""Sphinx configuration of the skvae documentation (``make docs``)."""

import torch

# sphinx-gallery resolves every name an example uses, IterativeImputer too, even unexecuted.
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from threadpoolctl import threadpool_limits

import skvae

project = "skvae"
copyright = "2026, the skvae developers"
author = "the skvae developers"
release = skvae.__version__
version = release

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "images", "auto_examples/*.ipynb"]
html_theme = "furo"
html_title = f"skvae {release}"

# MyST: anchors for headings, so that pages link to sections as [text](page.md#section).
myst_heading_anchors = 3

# autosummary writes one page per public name into generated/ (git-ignored).
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"

# numpydoc renders the docstrings; the class pages list their methods through autodoc.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# torch, and numpy's and scipy's BLAS, on one thread each: on a busy 2-core machine a second
# thread waits for its partner's time slice at every barrier. It changes how long the gallery
# takes, not what it shows. (joblib's workers, which run the examples under `sphinx -j`,
# start with one thread per core they share.)
torch.set_num_threads(1)
threadpool_limits(limits=1, user_api="blas")

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Gallery scripts are plot_*.py; demo_digits.py is `make demo`, not a gallery page.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(__init__|demo_digits)\.py",
    # A script runs without arguments, so on its full settings (it also writes its PNG files
    # into examples/output/); the figures it leaves open appear under the cell that drew them.
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    # One example per worker process, as many workers as `sphinx -j` (make docs: one a core).
    "parallel": True,
}


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document what skvae defines, not what it inherits from scikit-learn or torch."""
    target = getattr(obj, "fget", None) or getattr(obj, "__func__", None) or obj
    if not (getattr(target, "__module__", None) or "").startswith("skvae"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
