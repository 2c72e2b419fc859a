"""The machine record of a benchmark run: CPU, cores, vector ISA, library versions."""

import os
import platform

import keras
import tensorflow as tf


def vector_isa(flags, cap=None):
    """"AVX-512", "AVX2" (AVX2 + FMA, no AVX-512) or "older", from /proc/cpuinfo flags,
    as oneDNN uses it: `cap` is `$ONEDNN_MAX_CPU_ISA` (e.g. "AVX2" keeps an
    AVX-512 CPU's kernels to AVX2)."""
    if "avx512f" in flags and not (cap and cap.upper().startswith("AVX2")):
        return "AVX-512"
    return "AVX2" if {"avx2", "fma"} <= flags else "older"


def machine():
    """This machine: CPU model, cores, vector ISA (and the oneDNN cap), versions."""
    cpu, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines
                   if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1].split() for line in lines
                         if line.startswith("flags")))
    except (OSError, StopIteration):
        pass
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return {"cpu": cpu, "cores": os.cpu_count(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version(),
            "vector_isa": vector_isa(flags, cap), "cpu_has_avx512": "avx512f" in flags,
            "onednn_max_cpu_isa": cap}


def format_machine(m):
    """One line naming the machine, as the results tables start."""
    return (f"Machine: {m['cpu']}, {m['cores']} cores, {m['vector_isa']}"
            + (f" (ONEDNN_MAX_CPU_ISA={m['onednn_max_cpu_isa']})"
               if m.get("onednn_max_cpu_isa") else "")
            + f", TF {m['tensorflow']}, Keras {m['keras']}")
