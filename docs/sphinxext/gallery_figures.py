"""Hands the figures that the example scripts write to sphinx-gallery.

The scripts save their figures with ``--out DIR`` and close them, so sphinx-gallery's
matplotlib scraper finds no open figure. ``reset_argv`` gives each script a fresh
directory, and ``scraper`` moves the PNG files written there into the gallery.
"""

import shutil
import tempfile
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

# The order of the gallery: from what a VAE learns to what it is used for.
ORDER = [
    "plot_latent_space_digits.py",
    "plot_latent_traversal.py",
    "plot_training_curves.py",
    "plot_grid_search.py",
    "plot_count_data.py",
    "plot_batch_correction.py",
    "plot_imputation.py",
]

_out_dirs = {}


def reset_argv(gallery_conf, script_vars):
    """Command-line arguments of an example: its own directory for the figures."""
    out_dir = tempfile.mkdtemp(prefix=f"skvae-{Path(script_vars['src_file']).stem}-")
    _out_dirs[script_vars["src_file"]] = Path(out_dir)
    return ["--out", out_dir]


def scraper(block, block_vars, gallery_conf, **kwargs):
    """Move the PNG files the example wrote, in the order written, into the gallery."""
    out_dir = _out_dirs.get(block_vars["src_file"])
    if out_dir is None or not out_dir.is_dir():
        return ""
    written = sorted(out_dir.glob("*.png"), key=lambda path: (path.stat().st_mtime_ns, path.name))
    paths = []
    for png, image_path in zip(written, block_vars["image_path_iterator"], strict=False):
        shutil.move(png, image_path)
        paths.append(image_path)
    if not any(out_dir.iterdir()):
        out_dir.rmdir()
    return figure_rst(paths, gallery_conf["src_dir"])


def example_order(filename):
    """Sort key of an example file: its place in ORDER, then its name."""
    name = Path(filename).name
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)
