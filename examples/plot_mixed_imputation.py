"""Filling a table of labels and numbers with VAEImputer, and drawing completed tables
===================================================================================

palmerpenguins' table mixes strings (species, island, sex) with measurements. A further
15% of its observed entries are removed at random; ``VAEImputer`` fills every gap in a
frame like the input, each entry in its column's own type, beside the ``SimpleImputer``
pair a user would otherwise reach for: the most frequent label for strings, the mean for
numbers. Last, ``sample_posterior=True`` draws several completed tables from the same fit:
multiple imputation, whose spread shows how sure the model is of each missing value.

``benchmarks/bench_mixed_impute.py`` compares VAEImputer with missForest-style and miceforest
imputers on mixed tables from R packages, over several seeds.

Run from the repository root with ``python examples/plot_mixed_imputation.py`` (options:
``--out DIR`` for the figure, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

# %%
# Settings
# --------
#
# As a program, the script takes two options: ``--out DIR``, the directory its figure is
# written to, and ``--quick``, small settings that run in seconds (the tests use them). The
# gallery runs it with no option: the full settings, the figure in ``output/``.

import argparse
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer

from skvae import VAEEstimator, VAEImputer

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figure")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# The penguins with 15% of their entries removed
# ----------------------------------------------
#
# The table as the package ships it, less ``year``, the season of the field study, which
# says nothing of a penguin. Some entries are missing already (sex, mostly); of the
# observed ones, each is removed with probability 0.15, and the removed values are kept
# aside to score the fills.

table = load_penguins().drop(columns="year")
rng = np.random.default_rng(0)
removed = table.notna().to_numpy() & (rng.uniform(size=table.shape) < 0.15)
gapped = table.mask(removed)
LABELS = [column for column in table.columns if not pd.api.types.is_numeric_dtype(table[column])]
NUMBERS = [column for column in table.columns if column not in LABELS]
print(
    f"{len(table)} penguins, {table.shape[1]} columns; {table.isna().sum().sum()} entries "
    f"missing as shipped, {removed.sum()} more removed"
)

# %%
# Two imputers on the same gaps
# -----------------------------
#
# - ``VAEImputer()``, its defaults: it fits two candidate VAEs (each three times, from
#   different seeds), keeps the one that fills a further 10% of hidden entries better, and
#   fills each gap with its conditional mean given the row's observed entries, the most
#   probable label for a string column;
# - ``SimpleImputer`` in a ``ColumnTransformer``: the most frequent label of each string
#   column, the mean of each numeric one, whatever else the row says.
#
# The quick settings fit one small VAE for a few epochs. Printed: whether each filled
# frame has the input's dtypes and no missing value left, and the time each took.

if args.quick:
    model = VAEEstimator(likelihood="auto", hidden_layer_sizes=(16,), max_iter=10)
    vae_imputer = VAEImputer(model, n_estimators=1, random_state=0)
else:
    vae_imputer = VAEImputer(random_state=0)
baseline = ColumnTransformer(
    [
        (
            "labels",
            SimpleImputer(strategy="most_frequent"),
            make_column_selector(dtype_include=object),
        ),
        ("numbers", SimpleImputer(strategy="mean"), make_column_selector(dtype_include="number")),
    ],
    verbose_feature_names_out=False,
).set_output(transform="pandas")
imputers = {"VAEImputer": vae_imputer, "SimpleImputer": baseline}
filled = {}
for name, imputer in imputers.items():
    start = time.perf_counter()
    # The ColumnTransformer puts its columns in the order of its transformers.
    filled[name] = imputer.fit_transform(gapped)[list(gapped.columns)]
    seconds = time.perf_counter() - start
    same_dtypes = filled[name].dtypes.to_dict() == gapped.dtypes.to_dict()
    left = int(filled[name].isna().sum().sum())
    print(f"{name:<13} input's dtypes: {same_dtypes}, missing left: {left}, {seconds:5.1f}s")

# %%
# How close the fills are to the removed values
# ---------------------------------------------
#
# For a string column, the share of its removed labels filled right; for a numeric
# column, the NRMSE: the root mean squared error on its removed values divided by the
# column's standard deviation, so the column's mean as a fill scores about 1 and a
# perfect fill 0. The entries missing as shipped have no truth and are not scored.
# Printed last: three penguins with removed entries, as each imputer filled them (the
# VAE writes a fill with no more decimals than the column's observed values have).

scores = {name: {} for name in imputers}
print(f"{'column':<18} {'score':<9} {'VAEImputer':>10} {'SimpleImputer':>13}")
for j, column in enumerate(table.columns):
    truth = table.loc[removed[:, j], column]
    for name in imputers:
        fill = filled[name].loc[removed[:, j], column]
        if column in LABELS:
            scores[name][column] = float(np.mean(fill == truth))
        else:
            rmse = np.sqrt(np.mean((fill.astype(float) - truth) ** 2))
            scores[name][column] = float(rmse / table[column].std())
    kind = "accuracy" if column in LABELS else "NRMSE"
    print(
        f"{column:<18} {kind:<9} {scores['VAEImputer'][column]:10.3f} "
        f"{scores['SimpleImputer'][column]:13.3f}"
    )
shown = np.flatnonzero(removed.sum(axis=1) >= 2)[:3]
for title, frame in [("complete", table), ("with gaps", gapped), *filled.items()]:
    print(f"{title}:\n{frame.iloc[shown].to_string()}")

# %%
# Multiple imputation: completed tables drawn from the model
# ----------------------------------------------------------
#
# The conditional mean is the best single fill: under the model, no other value has a
# smaller expected squared error (and no other label is more likely right), so it is the
# one to use for one completed table. With ``sample_posterior=True``, each ``transform``
# call instead draws the row's missing entries jointly from p(x_missing | x_observed): m
# calls give m completed tables from one fit, and an analysis repeated on each and pooled
# (multiple imputation) carries the model's uncertainty about the missing values, which
# the spread of the draws shows.
#
# Printed: for each measurement, the share of its removed values inside the 5-95% range
# of their draws. A model whose spread is right puts it near 90% (a little below with few
# draws); well above, its draws are wider than its errors, and below, narrower.

n_draws = 5 if args.quick else 20
vae_imputer.set_params(sample_posterior=True)
draws = [vae_imputer.transform(gapped) for _ in range(n_draws)]
coverage = {}
for column in NUMBERS:
    rows = removed[:, table.columns.get_loc(column)]
    drawn = np.stack([draw.loc[rows, column].to_numpy(dtype=float) for draw in draws])
    low, high = np.quantile(drawn, [0.05, 0.95], axis=0)
    truth = table.loc[rows, column].to_numpy()
    coverage[column] = float(np.mean((low <= truth) & (truth <= high)))
print(f"{n_draws} completed tables; removed values inside the 5-95% range of their draws:")
for column, share in coverage.items():
    print(f"  {column:>18}: {share:.1%}")
# The measurements in one dict, which tests/test_examples.py checks.
results = {"scores": scores, "coverage": coverage}

# %%
# The draws of a few penguins
# ---------------------------
#
# The body masses drawn for three penguins of each species whose body mass was removed,
# one column of dots each, beside the mean fill (black line) and the true mass (red star).
# What to look at: whether the true mass falls among the draws, and how the spread
# differs from one penguin to the next.

COLUMN = "body_mass_g"
without_mass = removed[:, table.columns.get_loc(COLUMN)]
penguins = [
    i
    for species in sorted(table["species"].unique())
    for i in np.flatnonzero(without_mass & (table["species"] == species).to_numpy())[:3]
]
fig, ax = plt.subplots(figsize=(9, 4.5))
jitter = np.random.default_rng(1).uniform(-0.15, 0.15, size=n_draws)
for x, i in enumerate(penguins):
    drawn = [draw[COLUMN].iloc[i] for draw in draws]
    ax.scatter(
        x + jitter, drawn, s=14, color="tab:blue", alpha=0.6, label="draws" if x == 0 else None
    )
    ax.hlines(
        filled["VAEImputer"][COLUMN].iloc[i],
        x - 0.3,
        x + 0.3,
        color="black",
        label="mean fill" if x == 0 else None,
    )
    ax.scatter(
        x,
        table[COLUMN].iloc[i],
        marker="*",
        s=150,
        color="tab:red",
        zorder=3,
        label="true mass" if x == 0 else None,
    )
ax.set_xticks(range(len(penguins)))
ax.set_xticklabels([f"{table['species'].iloc[i]}\nrow {i}" for i in penguins], fontsize=8)
ax.set_ylabel("body mass (g)")
ax.set_title(f"Removed body masses: {n_draws} draws of VAEImputer(sample_posterior=True)")
ax.legend(loc="upper left")
fig.tight_layout()
path = out_dir / "mixed_imputation_draws.png"
fig.savefig(path, dpi=100)
print(f"wrote {path}")
