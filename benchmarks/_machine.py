"""What the benchmarks say about the machine they ran on (shared by the bench_* scripts)."""

import os
import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def warn_load(load: float) -> None:
    """Say so when other processes compete for the cores: times are then not representative."""
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load:.2f} on {os.cpu_count()} CPUs: other processes compete "
            "for the cores and the times are not representative"
        )
