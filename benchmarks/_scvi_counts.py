"""scvi-tools' SCVI on the tasks of bench_counts.py, run by that script on scvi-tools' Python.

Not a benchmark of its own (no skvae here): ``python _scvi_counts.py TASKS.json`` fits each
task's .npz (``X_train``, ``X_test``, with ``"batch"`` also ``batch_train`` and
``batch_test``) and writes its .json; the settings are part (d) of bench_counts.py's protocol.
"""

import json
import sys
import time

import numpy as np


def run(task: dict) -> dict:
    import anndata
    import scvi
    import torch

    torch.set_num_threads(1)
    scvi.settings.seed = task["seed"]
    data = np.load(task["data"])

    def adata(split):
        a = anndata.AnnData(data[f"X_{split}"].astype(np.float32))
        if task["batch"]:
            a.obs["batch"] = data[f"batch_{split}"].astype(str)
        return a

    train, test = adata("train"), adata("test")
    scvi.model.SCVI.setup_anndata(train, batch_key="batch" if task["batch"] else None)
    model = scvi.model.SCVI(train, n_hidden=128, n_layers=2, n_latent=task["n_latent"],
                            gene_likelihood="nb", dispersion="gene",
                            use_observed_lib_size=False)  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    model.train(max_epochs=task.get("max_epochs"), accelerator="cpu", devices=1,
                enable_progress_bar=False)  # fmt: skip
    fit_cpu, fit_seconds = time.process_time() - cpu, time.perf_counter() - wall
    out = {"latent_train": model.get_latent_representation(train).tolist(),
           "latent_test": model.get_latent_representation(test).tolist(),
           "fit_cpu_seconds": fit_cpu, "fit_seconds": fit_seconds,
           "epochs": int(model.history["elbo_train"].shape[0]),
           "scvi_version": scvi.__version__, "torch_version": torch.__version__}  # fmt: skip
    log_px = model.get_marginal_ll(test, n_mc_samples=50, return_mean=False)
    out["test_log_likelihood"] = np.asarray(log_px).tolist()
    return out


def main(path: str) -> int:
    with open(path) as f:
        tasks = json.load(f)
    for task in tasks:
        try:
            result = run(task)
        except Exception as exc:  # recorded, so that the benchmark says why
            result = {"error": f"{type(exc).__name__}: {exc}"}
        with open(task["out"], "w") as f:
            json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
