"""Tests of the evaluation figures."""

import numpy as np
import pytest

from conftest import assert_refuses_bad_files, synthetic_digits
from mnist_sum_keras.evaluate import evaluate, pair_figures


def test_pair_figures_counts_each_figure():
    numbers = np.array([0, 1, 2, 3])
    digits = np.array([5, 5, 5, 5])
    pred_digits = np.array([5, 5, 4, 4])
    pred_sums = np.array([5, 7, 6, 8])  # right, wrong, consistent-wrong, right
    figures = pair_figures(numbers, digits, pred_digits, pred_sums)
    assert figures == {"pairs": 4, "digit_accuracy": 0.5, "sum_accuracy": 0.5,
                       "both_correct": 0.25, "consistency": 0.5}


class _OracleModel:
    """Answers from the true labels, wrong on the sum whenever number == 9."""

    def __init__(self, images, digits):
        self.lookup = {img.tobytes(): int(d) for img, d in zip(images, digits)}
        self.calls = 0

    def predict(self, inputs, batch_size=None, verbose=0):
        images, numbers = inputs
        digits = np.array([self.lookup[img.tobytes()] for img in images])
        sums = np.where(numbers == 9, 0, digits + numbers)
        self.calls += 1
        return {"digit": np.eye(10)[digits], "sum": np.eye(19)[sums]}


def test_evaluate_uses_every_number_for_every_image():
    images, digits = synthetic_digits(20)
    figures = evaluate(_OracleModel(images, digits), images, digits)
    assert figures["pairs"] == 200
    assert figures["digit_accuracy"] == 1.0
    assert figures["sum_accuracy"] == pytest.approx(0.9)
    assert figures["consistency"] == pytest.approx(0.9)
    assert figures["both_correct"] == pytest.approx(0.9)


def test_report_on_a_tiny_model_writes_metrics_and_plots(tmp_path, tiny_config):
    import json
    import os

    from mnist_sum_keras.evaluate import evaluation_report
    from mnist_sum_keras.loading import load_any_model
    from mnist_sum_keras.model import build_model
    from mnist_sum_keras.report import PLOTS, format_table, write_report

    model_path = str(tmp_path / "v3.keras")
    build_model(tiny_config).save(model_path)
    (tmp_path / "v3.history.csv").write_text(
        "epoch,digit_accuracy,digit_loss,loss,sum_accuracy,sum_loss,val_digit_accuracy,"
        "val_digit_loss,val_loss,val_sum_accuracy,val_sum_loss\n"
        "0,0.9,0.3,0.8,0.8,0.5,0.95,0.2,0.5,0.9,0.3\n"
        "1,0.97,0.1,0.3,0.96,0.2,0.98,0.08,0.2,0.97,0.12\n")
    images, digits = synthetic_digits(30)
    digits[digits == 7] = 6  # A class with no test image: reported as None.
    report = evaluation_report(load_any_model(model_path), images, digits, seed=4)
    assert report["digit_accuracy_by_class"][7] is None
    assert report["exhaustive"]["pairs"] == 300
    assert report["single_number"]["pairs"] == 30
    assert np.sum(report["digit_confusion"]) == 300
    assert np.array(report["sum_confusion"]).shape == (19, 19)
    metrics = write_report(report, images, str(tmp_path / "report"), model_path)
    with open(tmp_path / "report" / "metrics.json") as f:
        saved = json.load(f, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved == json.loads(json.dumps(metrics))
    for key in ("exhaustive", "single_number", "sum_accuracy_by_number",
                "digit_accuracy_by_class", "digit_confusion", "sum_confusion",
                "model", "data_sha256", "versions", "plots"):
        assert key in saved
    assert len(saved["sum_accuracy_by_number"]) == len(saved["digit_accuracy_by_class"]) == 10
    assert set(saved["versions"]) >= {"mnist_sum_keras", "tensorflow", "keras"}
    for name in (*PLOTS, "training_curves.png"):
        assert os.path.getsize(tmp_path / "report" / name) > 1000
    assert "one number per image" in format_table(metrics)


def test_single_number_pass_is_a_slice_of_the_exhaustive_pairs():
    from mnist_sum_keras.data import fixed_numbers
    from mnist_sum_keras.evaluate import evaluation_report

    images, digits = synthetic_digits(20)
    model = _OracleModel(images, digits)
    report = evaluation_report(model, images, digits, seed=3)
    chosen = fixed_numbers(20, 3)
    # The oracle is wrong on the sum exactly when the number is 9.
    assert report["single_number"]["sum_accuracy"] == pytest.approx(np.mean(chosen != 9))
    assert report["sum_accuracy_by_number"] == [1.0] * 9 + [0.0]
    assert model.calls == 1


def test_load_any_model_errors(tmp_path):
    from mnist_sum_keras.loading import load_any_model

    assert_refuses_bad_files(load_any_model, ValueError, tmp_path, ".keras",
                             missing="Model not found.*{name}", directory="no saved_model.pb",
                             garbage="Could not load .*{name}")
