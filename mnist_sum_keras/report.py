"""Writes an evaluation report folder: metrics.json and PNG plots."""

import hashlib
import os
import re

import keras
import numpy as np
import tensorflow as tf

import mnist_sum_keras
from mnist_sum_keras import plots
from mnist_sum_keras.data import resolve_data_path
from mnist_sum_keras.files import write_json_atomically

PLOTS = ("digit_confusion.png", "sum_confusion.png", "worst_mistakes.png")


def file_sha256(path):
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def history_beside(model_path):
    """The CSV history written beside a released model, or None.

    `v3.keras` and the SavedModel `3/` both have `v3.history.csv` beside them.
    """
    path = os.path.normpath(model_path)
    name = os.path.basename(path)
    match = re.fullmatch(r"v?(\d+)(\.keras)?", name)
    if not match:
        return None
    csv = os.path.join(os.path.dirname(path), f"v{match.group(1)}.history.csv")
    return csv if os.path.isfile(csv) else None


def _data_file(data_path):
    path = resolve_data_path(data_path)
    if path is None:  # Keras' download cache.
        path = os.path.join(os.path.expanduser("~"), ".keras", "datasets", "mnist.npz")
    return path if os.path.isfile(path) else None


def write_report(report, images, output_dir, model_path, data_path=None):
    """Writes `metrics.json` and the PNG plots of an `evaluation_report`.

    Args:
        report: the dict from `evaluate.evaluation_report`.
        images: the test images the report was computed on.
        output_dir: folder to write into (created).
        model_path: the evaluated model, recorded and used to find its history.
        data_path: the MNIST file used (None: `$MNIST_SUM_DATA` or Keras' cache).

    Returns:
        The metrics dict that was written.
    """
    os.makedirs(output_dir, exist_ok=True)
    data_file = _data_file(data_path)
    metrics = {key: value for key, value in report.items() if key != "predictions"}
    metrics.update({
        "model": os.path.abspath(model_path),
        "data": os.path.abspath(data_file) if data_file else None,
        "data_sha256": file_sha256(data_file) if data_file else None,
        "versions": {"mnist_sum_keras": mnist_sum_keras.__version__,
                     "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__},
    })
    plots.confusion_matrix(report["digit_confusion"], "Digit head: confusion over all "
                           "test pairs", os.path.join(output_dir, PLOTS[0]), "digit")
    plots.confusion_matrix(report["sum_confusion"], "Sum head: confusion over all "
                           "test pairs", os.path.join(output_dir, PLOTS[1]), "sum")
    plots.worst_mistakes(images, report["predictions"], os.path.join(output_dir, PLOTS[2]))
    history = history_beside(model_path)
    if history:
        plots.training_curves(history, os.path.join(output_dir, "training_curves.png"))
    metrics["plots"] = sorted(name for name in os.listdir(output_dir)
                              if name.endswith(".png"))
    write_json_atomically(os.path.join(output_dir, "metrics.json"), metrics)
    return metrics


def _percent(fraction):
    return f"{'-':>7}" if fraction is None else f"{100 * fraction:>7.2f}"


def format_table(metrics):
    """The compact text table printed by scripts/evaluate.py."""
    lines = [f"{'':<24}{'digit':>8}{'sum':>8}{'both':>8}{'consist.':>10}"]
    for key, title in (("exhaustive", "all numbers per image"),
                       ("single_number", "one number per image")):
        f = metrics[key]
        lines.append(f"{title:<24}{100 * f['digit_accuracy']:>7.2f}%"
                     f"{100 * f['sum_accuracy']:>7.2f}%{100 * f['both_correct']:>7.2f}%"
                     f"{100 * f['consistency']:>9.2f}%   ({f['pairs']:,} pairs)")
    lines.append("")
    lines.append("number            " + "".join(f"{n:>7}" for n in range(10)))
    lines.append("sum accuracy (%)  " + "".join(
        _percent(a) for a in metrics["sum_accuracy_by_number"]))
    lines.append("true digit        " + "".join(f"{n:>7}" for n in range(10)))
    lines.append("digit accuracy (%)" + "".join(
        _percent(a) for a in metrics["digit_accuracy_by_class"]))
    return "\n".join(lines)
