"""Synthetic rows of a mixed table, and how to tell whether they are any good
==========================================================================

palmerpenguins' table as the package ships it: strings (species, island, sex), measurements
with missing values, and a year. ``VAEEstimator(likelihood="auto")`` takes the DataFrame as
it is, and ``sample`` returns new rows in the same form. Three ways to judge the draws
follow, each against real rows the model never saw (30% held out), and last, draws given
a column's value.

``benchmarks/bench_synth.py`` measures the same against SDV's TVAE and CTGAN on more
tables and seeds.

Run from the repository root with ``python examples/plot_synthetic_tables.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

# %%
# Settings
# --------
#
# As a program, the script takes two options: ``--out DIR``, the directory its figures are
# written to, and ``--quick``, small settings that run in seconds (the tests use them). The
# gallery runs it with no option: the full settings, figures in ``output/``.

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from palmerpenguins import load_penguins
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from skvae import VAEEstimator
from skvae.plotting import MarginalsDisplay

parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
parser.add_argument("--out", default="output", help="directory of the figures")
parser.add_argument("--quick", action="store_true", help="small settings, for tests")
args = parser.parse_args()
out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)

# %%
# A VAE on the table as it is
# ---------------------------
#
# ``likelihood="auto"`` picks a family (a kind of distribution) per column from its
# values: a categorical one for labels and a Gaussian one for measurements, for example.
# ``likelihood_`` lists the columns of each family; a missing value is left out of the
# likelihood. The split keeps the share of each species in both parts.

TARGET = "species"
table = load_penguins()
train, test = train_test_split(table, test_size=0.3, stratify=table[TARGET], random_state=0)
params = {"hidden_layer_sizes": (16,), "max_iter": 5} if args.quick else {}
vae = VAEEstimator(likelihood="auto", random_state=0, **params).fit(train)
print(f"{len(train)} training and {len(test)} held-out penguins; families per column:")
for family, columns in vae.likelihood_.items():
    print(f"  {family:>20}: {', '.join(columns)}")

# %%
# Synthetic rows
# --------------
#
# ``sample`` draws as many rows as the training set has, in the training frame's form: the
# same columns, dtypes and labels, whole numbers where the column held them, and every
# numeric draw within the column's training range. ``missing=False`` asks for complete
# rows, which the comparisons below need (``missing="auto"`` would leave entries missing
# at each column's training rate). Printed: whether the columns and dtypes match, and the
# first three draws.

synthetic = vae.sample(len(train), random_state=0, missing=False)
same = list(synthetic.columns) == list(train.columns) and all(synthetic.dtypes == train.dtypes)
print(f"draws have the training frame's columns and dtypes: {same}")
print(synthetic.head(3).to_string())

# %%
# First judge: the marginals
# --------------------------
#
# The marginals are the distributions of the columns one at a time: real against
# synthetic, column by column (``MarginalsDisplay``). They say nothing of how the columns
# go together, which the next two judges test.

display = MarginalsDisplay.from_data(train, synthetic)
display.figure_.suptitle("palmerpenguins: training rows against VAEEstimator's draws")
path = out_dir / "synthetic_marginals.png"
display.figure_.savefig(path, dpi=100)
print(f"wrote {path}")

# %%
# Second judge: the log-likelihood of real and synthetic rows
# -----------------------------------------------------------
#
# The mean log-likelihood per row under the model, in nats (units of the natural
# logarithm), of three sets of rows. Held-out rows beside training rows: a model that
# learned the table and not its rows scores both alike. Its own draws beside them: draws
# that look like data to the model score like data.

log_likelihood = {
    "training rows": float(np.mean(vae.score_samples(train))),
    "held-out rows": float(np.mean(vae.score_samples(test))),
    "synthetic rows": float(np.mean(vae.score_samples(synthetic))),
}
print("mean log-likelihood per row under the model (nats):")
for rows, value in log_likelihood.items():
    print(f"  {rows:>15}: {value:.2f}")

# %%
# Third judge: train on synthetic, test on real
# ---------------------------------------------
#
# A classifier of the species is fitted on the draws, and another on the real training
# rows; both are scored on the held-out real rows. The closer the two accuracies, the
# better the draws keep how the measurements go with the species.


def as_features(frame, table):
    """The columns other than the target, the string ones as pandas categories.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows of the penguins' table, real or drawn.
    table : pandas.DataFrame
        The whole table, whose labels set each string column's categories.

    Returns
    -------
    pandas.DataFrame
        The features of the classifier.
    """
    X = frame.drop(columns=TARGET).copy()
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            labels = sorted(table[column].dropna().unique())
            X[column] = pd.Categorical(X[column], categories=labels)
    return X


def train_on(rows, test, table):
    """Accuracy on the held-out real rows of a classifier of the species fitted on ``rows``.

    Parameters
    ----------
    rows : pandas.DataFrame
        The rows the classifier is fitted on.
    test : pandas.DataFrame
        The held-out real rows it is scored on.
    table : pandas.DataFrame
        The whole table, whose labels set each string column's categories.

    Returns
    -------
    float
        The share of the held-out rows whose species the classifier predicts.
    """
    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    clf.fit(as_features(rows, table), rows[TARGET])
    return clf.score(as_features(test, table), test[TARGET])


accuracy = {
    "trained on real rows": train_on(train, test, table),
    "trained on synthetic rows": train_on(synthetic, test, table),
}
print("species classifier, accuracy on the held-out real rows:")
for rows, value in accuracy.items():
    print(f"  {rows:>26}: {value:.3f}")

# %%
# Draws given a column's value
# ----------------------------
#
# ``sample(n, given={"species": "Chinstrap"})`` picks the latent points by importance
# resampling: for each row it draws 500 latent points from the prior, weights each by the
# probability the decoder gives a Chinstrap there, and picks one in proportion to those
# weights, so the other columns follow what the model has learned of Chinstrap penguins.
# Printed: the mean of three measurements in the real Chinstraps and in 200 such draws;
# the figure compares their marginals.

given = vae.sample(200, given={TARGET: "Chinstrap"}, random_state=0, missing=False)
chinstraps = train[train[TARGET] == "Chinstrap"]
conditional = {
    column: {"real": float(chinstraps[column].mean()), "drawn": float(given[column].mean())}
    for column in ("bill_length_mm", "flipper_length_mm", "body_mass_g")
}
print('draws given species="Chinstrap": mean of the real Chinstraps and of the draws')
for column, means in conditional.items():
    print(f"  {column:>18}: {means['real']:8.1f} {means['drawn']:8.1f}")
# The measurements in one dict, which tests/test_examples.py checks.
results = {"log_likelihood": log_likelihood, "accuracy": accuracy, "conditional": conditional}

display = MarginalsDisplay.from_data(chinstraps.drop(columns=TARGET), given.drop(columns=TARGET))
display.figure_.suptitle('Chinstrap penguins against draws given species="Chinstrap"')
path = out_dir / "synthetic_given_species.png"
display.figure_.savefig(path, dpi=100)
print(f"wrote {path}")
