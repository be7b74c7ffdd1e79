"""What the benchmarks say about the machine they ran on (shared by the bench_* scripts)."""

import os
import platform
import resource


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


def current_rss() -> int:
    """Resident set size of this process now, in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
