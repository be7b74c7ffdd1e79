"""Render benchmarks/README.md from the results in benchmarks/results/*.json.

    python benchmarks/render.py [--results DIR] [--out FILE]

The page is the prose of ``_page.md``, a table of the benchmarks in :data:`BENCHMARKS`, and
per benchmark its script's docstring title, its protocol (``_protocols.md``), the stamp of
its result file and the tables the script stored there (``tables``: paragraphs and
``{"header", "rows"}`` tables). A benchmark without a result file gets a line saying so.
"""

import argparse
import ast
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The registry: result name, script, the options that select it, full-run command, and
# its time on an idle 2-core machine. ``make bench`` runs the entries marked "make bench".
BENCHMARKS = [
    ("bench_fit", "", "python benchmarks/bench_fit.py --repeats 9", "1-2 minutes"),
    ("bench_transform", "", "python benchmarks/bench_transform.py", "a few minutes"),
    ("bench_grid", "", "python benchmarks/bench_grid.py", "a few minutes"),
    ("bench_scale", "", "python benchmarks/bench_scale.py", "a few minutes, 1.5 GB of RAM"),
    ("bench_dask", "", "python benchmarks/bench_dask.py", "2-4 minutes"),
    ("bench_impute", "", "OMP_NUM_THREADS=1 python benchmarks/bench_impute.py",
     "about 6 minutes"),
    ("quality", "", "python benchmarks/quality.py --threads 1", "under 13 minutes"),
    ("bench_defaults_tuning", "--group tuning",
     "python benchmarks/bench_defaults.py --group tuning --threads 1", "about 10 minutes"),
    ("bench_defaults_reporting", "--group reporting",
     "python benchmarks/bench_defaults.py --threads 1", "about 25 minutes"),
    ("bench_outliers_tuning", "--group tuning",
     "python benchmarks/bench_outliers.py --group tuning --jobs 2", "about 3 minutes"),
    ("bench_outliers", "", "python benchmarks/bench_outliers.py", "about 4 minutes"),
    ("bench_synth_tuning", "--group tuning", "python benchmarks/bench_synth.py --group tuning",
     "about 25 minutes"),
    ("bench_synth", "", "python benchmarks/bench_synth.py", "about 20 minutes"),
    ("bench_counts", "",
     "python benchmarks/bench_counts.py --scvi-python benchmarks/.scvi-venv/bin/python",
     "about 75 minutes, all parts (measured part by part under a load of 1-7)"),
    ("bench_choices_tuning", "--group tuning",
     "python benchmarks/bench_choices.py --group tuning", "about 10 minutes"),
    ("bench_choices", "", "python benchmarks/bench_choices.py", "about 25 minutes"),
    ("bench_mixed_impute", "", "python benchmarks/bench_mixed_impute.py", "about 30 minutes"),
    ("bench_cluster_tuning", "--group tuning",
     "OMP_NUM_THREADS=1 python benchmarks/bench_cluster.py --group tuning", "about 3 minutes"),
    ("bench_cluster", "", "OMP_NUM_THREADS=1 python benchmarks/bench_cluster.py",
     "about 10 minutes"),
    ("bench_tables", "", "python benchmarks/bench_tables.py --jobs 2", "about 15 minutes"),
    ("bench_cost", "",
     "python benchmarks/bench_cost.py --baseline c50674c --rounds 2 --targets 1 2 3 5",
     "about an hour"),
]  # fmt: skip


def script_of(name: str) -> str:
    """The script (without .py) that writes benchmark ``name``'s results."""
    return name.removesuffix("_tuning").removesuffix("_reporting")


def num(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals; text (such as "nan") and None as they are."""
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # A "|" inside a cell (such as |gap|) would end the cell.
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(blocks: list) -> str:
    """Paragraphs as they are, ``{"header", "rows"}`` blocks as markdown tables."""
    return "\n\n".join(b if isinstance(b, str) else table(b["header"], b["rows"]) for b in blocks)


def summary_line(name: str) -> str:
    """The first line of benchmark ``name``'s script's docstring, read without importing it."""
    tree = ast.parse((HERE / f"{script_of(name)}.py").read_text())
    return (ast.get_docstring(tree) or name).splitlines()[0].rstrip(".")


def stamp(doc: dict) -> str:
    m = doc["machine"]
    commit = (doc.get("commit") or "unknown")[:12]
    dirty = " with uncommitted changes" if doc.get("dirty") else ""
    memory = "" if m.get("memory_bytes") is None else f", {m['memory_bytes'] / 2**30:.0f} GB"
    omp = f", OMP_NUM_THREADS={m['OMP_NUM_THREADS']}" if m.get("OMP_NUM_THREADS") else ""
    load = doc["load_average"]
    lines = [
        f"`{doc['command']}`",
        f"commit `{commit}`{dirty}, {doc['date']}, {num(doc.get('seconds'), 0)} s; "
        f"{m['cpu']}, {m['cores']} cores{memory}, {m['os']}; Python {m['python']}, torch "
        f"{m['torch']} ({m['torch_threads']} threads{omp}), numpy {m['numpy']}, "
        f"scikit-learn {m['scikit-learn']}, skvae {m['skvae']}; load average "
        f"{num(load['start'][0], 2)} at the start, {num(load.get('end', [None])[0], 2)} at "
        "the end",
    ]
    if doc.get("quick"):
        lines.append("**A `--quick` smoke run: its numbers mean nothing.**")
    return "  \n".join(lines)


def protocols() -> dict[str, str]:
    """Each script's protocol: the sections of ``_protocols.md``, headed by the script's file."""
    text = (HERE / "_protocols.md").read_text()
    return dict(chunk.strip().split("\n", 1) for chunk in text.split("\n## ")[1:])


def render_readme(results: dict[str, dict]) -> str:
    rows, sections, described = [], [], {}
    protocol = protocols()
    for name, options, command, duration in BENCHMARKS:
        label = f"{script_of(name)}.py {options}".rstrip()
        rows.append([f"[`{label}`]({script_of(name)}.py)", summary_line(name), f"`{command}`",
                     duration])  # fmt: skip
        script = f"{script_of(name)}.py"
        if script in described:
            about = f"The protocol is above, under `{described[script]}`."
        else:
            about = f"### Protocol\n\n{protocol[script].strip()}\n\n### Results"
            described[script] = label
        doc = results.get(name)
        body = [stamp(doc), markdown(doc["tables"])] if doc else [f"Not run yet: `{command}`."]
        sections.append("\n\n".join([f"## {label}: {summary_line(name)}", about, *body]))
    page = (HERE / "_page.md").read_text().rstrip()
    page = page.replace("@TABLE@", table(["script", "measures", "full run", "time"], rows))
    return "\n\n".join([page, *sections]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results", help="JSON files")
    parser.add_argument("--out", type=Path, default=HERE / "README.md", help="page to write")
    args = parser.parse_args(argv)
    results = {}
    for path in sorted(args.results.glob("*.json")):
        doc = json.loads(path.read_text())
        results[doc.get("benchmark", path.stem)] = doc
    unknown = sorted(set(results) - {name for name, *_ in BENCHMARKS})
    if unknown:
        parser.error(f"not in the registry: {', '.join(unknown)}")
    args.out.write_text(render_readme(results))
    print(f"{args.out}: {len(results)} of {len(BENCHMARKS)} benchmarks rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
