"""Matplotlib figures of an evaluation report, written as PNG files."""

import csv

import numpy as np

# matplotlib's object-oriented Figure draws to files without pyplot's global
# state or a display backend, whatever backend the caller has chosen.
from matplotlib.figure import Figure

from mnist_sum_keras.config import NUM_DIGITS


def confusion_matrix(matrix, title, path, label):
    """Plots a count matrix (rows true, columns predicted) on a log colour scale."""
    matrix = np.asarray(matrix)
    classes = len(matrix)
    fig = Figure(figsize=(0.45 * classes + 3, 0.45 * classes + 2.5))
    ax = fig.subplots()
    image = ax.imshow(np.log10(matrix + 1), cmap="Blues")
    for i in range(classes):
        for j in range(classes):
            if matrix[i, j]:
                dark = np.log10(matrix[i, j] + 1) > 0.6 * np.log10(matrix.max() + 1)
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                        fontsize=7 if classes > 10 else 9,
                        color="white" if dark else "black")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel(f"predicted {label}")
    ax.set_ylabel(f"true {label}")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="log10(count + 1)", shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def training_curves(history_csv, path):
    """Plots loss and accuracy of both heads per epoch from a CSVLogger file."""
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"No epochs in the training history {history_csv!r}")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    for head in ("digit", "sum"):
        for prefix, style in (("", "-"), ("val_", "--")):
            name = "training" if not prefix else "validation"
            if f"{prefix}{head}_loss" in rows[0]:
                left.plot(epochs, [float(r[f"{prefix}{head}_loss"]) for r in rows],
                          style, label=f"{head} ({name})")
                right.plot(epochs, [100 * float(r[f"{prefix}{head}_accuracy"])
                                    for r in rows], style, label=f"{head} ({name})")
    left.set_yscale("log")
    left.set_title("Loss per head")
    left.set_ylabel("cross-entropy (log scale)")
    right.set_title("Accuracy per head")
    right.set_ylabel("accuracy (%)")
    right.set_ylim(95, 100)
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def worst_mistakes(images, predictions, path, count=24):
    """A grid of the most confident wrong pairs: image, number, true and predicted.

    Args:
        images: the test images (N, 28, 28); pair k shows image k // 10.
        predictions: `evaluation_report(...)["predictions"]`.
        path: PNG to write.
        count: most cells in the grid.
    """
    p = predictions
    sums = p["digits"] + p["numbers"]
    wrong = np.flatnonzero((p["pred_digits"] != p["digits"]) | (p["pred_sums"] != sums))
    # Rank by the confidence of the wrong answer, one pair per image.
    confidence = np.where(p["pred_sums"][wrong] != sums[wrong],
                          p["sum_confidence"][wrong], p["digit_confidence"][wrong])
    chosen, seen = [], set()
    for k in wrong[np.argsort(-confidence, kind="stable")]:
        if k // NUM_DIGITS not in seen:
            seen.add(k // NUM_DIGITS)
            chosen.append(k)
        if len(chosen) == count:
            break
    cols = 6
    rows = max(1, -(-len(chosen) // cols))
    fig = Figure(figsize=(2.1 * cols, 2.4 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, k in zip(axes.flat, chosen):
        ax.imshow(images[k // NUM_DIGITS], cmap="gray")
        ax.set_title(
            f"number {p['numbers'][k]}\n"
            f"digit {p['digits'][k]}→{p['pred_digits'][k]} "
            f"sum {sums[k]}→{p['pred_sums'][k]}",
            fontsize=8, color="crimson")
    fig.suptitle(f"Most confident mistakes ({len(wrong)} wrong pairs in all; "
                 "true→predicted)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
