"""Synthetic rows of a mixed table, and how to tell whether they are any good
==========================================================================

palmerpenguins' table as the package ships it: strings (species, island, sex), measurements
with missing values, and a year. ``VAEEstimator(likelihood="auto")`` takes the DataFrame as
it is and picks a family per column (``likelihood_``); ``sample`` then returns rows in the
same form: the same columns, dtypes and labels, whole numbers where the column held them,
and every numeric draw within the column's training range.

Three ways to judge the draws, each against real rows the model never saw (30% held out):

- the marginals, real against synthetic, column by column (``MarginalsDisplay``);
- the model's log-likelihood of the held-out rows beside that of the training rows (a
  model that learned the table and not its rows scores both alike) and beside that of
  its own draws (draws that look like data to the model score like data);
- train on synthetic, test on real: a classifier of the species fitted on the draws and
  one fitted on the real training rows, both scored on the held-out rows.

Last, draws given a column's value: ``sample(n, given={"species": "Chinstrap"})`` picks the
latent points by importance resampling, so the other columns follow what the model has
learned of Chinstrap penguins.

``benchmarks/bench_synth.py`` measures the same against SDV's TVAE and CTGAN on more
tables and seeds.

Run from the repository root with ``python examples/plot_synthetic_tables.py`` (options:
``--out DIR`` for the figures, ``output/`` by default; ``--quick`` for a seconds-long run
on small settings, which is what the tests do).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from palmerpenguins import load_penguins  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skvae import VAEEstimator  # noqa: E402
from skvae.plotting import MarginalsDisplay  # noqa: E402

TARGET = "species"


def as_features(frame, table):
    """The columns other than the target, the string ones as pandas categories."""
    X = frame.drop(columns=TARGET).copy()
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(table[column]):
            labels = sorted(table[column].dropna().unique())
            X[column] = pd.Categorical(X[column], categories=labels)
    return X


def train_on(rows, test, table):
    """Accuracy on the held-out real rows of a classifier of the species fitted on ``rows``."""
    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    clf.fit(as_features(rows, table), rows[TARGET])
    return clf.score(as_features(test, table), test[TARGET])


def main(quick=False, out_dir="output"):
    """Fit on the penguins, draw rows, judge them three ways, draw given a species."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = load_penguins()
    train, test = train_test_split(table, test_size=0.3, stratify=table[TARGET], random_state=0)
    params = {"hidden_layer_sizes": (16,), "max_iter": 5} if quick else {}
    vae = VAEEstimator(likelihood="auto", random_state=0, **params).fit(train)
    synthetic = vae.sample(len(train), random_state=0)
    print(f"{len(train)} training and {len(test)} held-out penguins; families per column:")
    for family, columns in vae.likelihood_.items():
        print(f"  {family:>20}: {', '.join(columns)}")
    same = list(synthetic.columns) == list(train.columns) and all(synthetic.dtypes == train.dtypes)
    print(f"draws have the training frame's columns and dtypes: {same}")
    print(synthetic.head(3).to_string())

    log_likelihood = {
        "training rows": float(np.mean(vae.score_samples(train))),
        "held-out rows": float(np.mean(vae.score_samples(test))),
        "synthetic rows": float(np.mean(vae.score_samples(synthetic))),
    }
    print("mean log-likelihood per row under the model (nats):")
    for rows, value in log_likelihood.items():
        print(f"  {rows:>15}: {value:.2f}")

    accuracy = {
        "trained on real rows": train_on(train, test, table),
        "trained on synthetic rows": train_on(synthetic, test, table),
    }
    print("species classifier, accuracy on the held-out real rows:")
    for rows, value in accuracy.items():
        print(f"  {rows:>26}: {value:.3f}")

    given = vae.sample(200, given={TARGET: "Chinstrap"}, random_state=0)
    chinstraps = train[train[TARGET] == "Chinstrap"]
    conditional = {
        column: {"real": float(chinstraps[column].mean()), "drawn": float(given[column].mean())}
        for column in ("bill_length_mm", "flipper_length_mm", "body_mass_g")
    }
    print('draws given species="Chinstrap": mean of the real Chinstraps and of the draws')
    for column, means in conditional.items():
        print(f"  {column:>18}: {means['real']:8.1f} {means['drawn']:8.1f}")

    paths = [out_dir / "synthetic_marginals.png", out_dir / "synthetic_given_species.png"]
    display = MarginalsDisplay.from_data(train, synthetic)
    display.figure_.suptitle("palmerpenguins: training rows against VAEEstimator's draws")
    display.figure_.savefig(paths[0], dpi=100)
    display = MarginalsDisplay.from_data(
        chinstraps.drop(columns=TARGET), given.drop(columns=TARGET)
    )
    display.figure_.suptitle('Chinstrap penguins against draws given species="Chinstrap"')
    display.figure_.savefig(paths[1], dpi=100)
    plt.close("all")
    for path in paths:
        print(f"wrote {path}")
    return {"log_likelihood": log_likelihood, "accuracy": accuracy, "conditional": conditional}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--out", default="output", help="directory of the figures")
    parser.add_argument("--quick", action="store_true", help="small settings, for tests")
    args = parser.parse_args()
    main(quick=args.quick, out_dir=args.out)
