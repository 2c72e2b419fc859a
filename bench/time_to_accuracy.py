"""Time to accuracy: per-epoch test curves of ours, the keras-io reference, seed-000 and
shorter schedules of our recipe (the frontier), and the cost of the default.

    python -m bench.time_to_accuracy [--data PATH] [--quick] [--frontier SPEC ...]

Writes `time_to_accuracy` into bench/results.json (its other parts are kept),
the log-log plot docs/time_to_accuracy.png, and prints its table.
"""

import dataclasses
import os
import shutil
import sys
import time

import keras
import numpy as np

from bench import common
from bench.machine import format_machine, machine
from mnist_sum_keras import data
from mnist_sum_keras.config import NUM_DIGITS, NUM_SUMS
from mnist_sum_keras.evaluate import evaluate
from mnist_sum_keras.train import train

# Cheaper schedules of the default recipe: one network instead of the committee
# (`members=1`), fewer epochs, and a cheaper first stage (2x2 pixel blocks as channels
# at 14x14, or one conv at 28x28), chosen on the validation split over two seeds on an
# AVX2-only CPU, where 28x28 convolutions cost most (docs/benchmarks.md). The last is
# the single network at full length.
FRONTIER = ("epochs=4,stem=space_to_depth,conv_filters=16/32/64,members=1",
            "epochs=5,stage_blocks=1/2,members=1", "epochs=5,members=1", "members=1")
# The Config fields a frontier schedule may change.
SCHEDULE_FIELDS = ("epochs", "conv_filters", "members", "stem", "stage_blocks")
PLOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                    "time_to_accuracy.png")


def reference_model():
    """keras-io "Simple MNIST convnet" with our two inputs and two heads.

    Two 3x3 convs (32, 64) with max-pooling, dropout 0.5; the one-hot number is
    merged before the heads (dense softmax), as the task needs.
    """
    image = keras.Input(shape=(28, 28), dtype="uint8", name="image")
    number = keras.Input(shape=(), dtype="int32", name="number")
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.Reshape((28, 28, 1))(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    one_hot = keras.layers.CategoryEncoding(NUM_DIGITS, output_mode="one_hot")(number)
    merged = keras.layers.Concatenate()([x, one_hot])
    digit = keras.layers.Dense(NUM_DIGITS, activation="softmax", name="digit")(merged)
    # A hidden layer: a linear sum head cannot learn addition.
    h = keras.layers.Dense(128, activation="relu")(merged)
    total = keras.layers.Dense(NUM_SUMS, activation="softmax", name="sum")(h)
    model = keras.Model([image, number], {"digit": digit, "sum": total})
    model.compile(optimizer="adam",
                  loss={"digit": "sparse_categorical_crossentropy",
                        "sum": "sparse_categorical_crossentropy"},
                  metrics={"digit": ["accuracy"], "sum": ["accuracy"]})
    return model


def seed000_model():
    """The seed-000 network rebuilt in Keras (issue 12's third curve).

    Two 5x5 convolutions (6 and 12 channels), each with ReLU and 2x2 max-pooling;
    the one-hot number through a 30-unit layer, concatenated with the 192
    flattened features; dense 120, 60, 45; digit and sum heads; SGD lr 0.001,
    momentum 0.9 (trained at batch 32 for 10 epochs).
    """
    image = keras.Input(shape=(28, 28), dtype="uint8", name="image")
    number = keras.Input(shape=(), dtype="int32", name="number")
    x = keras.layers.Rescaling(1 / 255)(image)
    x = keras.layers.Reshape((28, 28, 1))(x)
    for filters in (6, 12):
        x = keras.layers.Conv2D(filters, 5, activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)   # 4 x 4 x 12 = 192
    one_hot = keras.layers.CategoryEncoding(NUM_DIGITS, output_mode="one_hot")(number)
    h = keras.layers.Concatenate()([x, keras.layers.Dense(30, activation="relu")(one_hot)])
    for units in (120, 60, 45):
        h = keras.layers.Dense(units, activation="relu")(h)
    digit = keras.layers.Dense(NUM_DIGITS, activation="softmax", name="digit")(h)
    total = keras.layers.Dense(NUM_SUMS, activation="softmax", name="sum")(h)
    model = keras.Model([image, number], {"digit": digit, "sum": total})
    model.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9),
                  loss={"digit": "sparse_categorical_crossentropy",
                        "sum": "sparse_categorical_crossentropy"},
                  metrics={"digit": ["accuracy"], "sum": ["accuracy"]})
    return model


class _Curve(keras.callbacks.Callback):
    """After every epoch: cumulative training seconds, then test accuracy.

    The clock runs from each epoch's start to its end as `fit` runs it (the
    validation pass included), and stops before the test evaluation, which is
    for the curve only: nothing is selected on it. The test pairs are the
    10,000 test images with one seed-fixed number each.
    """

    def __init__(self, images, digits, seed):
        super().__init__()
        self.images, self.digits = images, np.asarray(digits, np.int32)
        self.numbers = data.fixed_numbers(len(images), seed)
        self.points, self.seconds = [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self.start
        probs = self.model.predict([self.images, self.numbers], batch_size=1000, verbose=0)
        self.points.append({
            "epoch": epoch + 1, "train_seconds": round(self.seconds, 2),
            "digit_accuracy": float(np.mean(np.argmax(probs["digit"], -1) == self.digits)),
            "sum_accuracy": float(np.mean(np.argmax(probs["sum"], -1)
                                          == self.digits + self.numbers))})


def first_seconds(curve, accuracy):
    """Training seconds at the first epoch whose sum accuracy reaches `accuracy`."""
    return next((p["train_seconds"] for p in curve if p["sum_accuracy"] >= accuracy), None)


def parse_schedule(spec):
    """`"epochs=3"`, `"conv_filters=8/16/32"`, `"members=1"` or several, comma-separated
    (any of `SCHEDULE_FIELDS`) -> (name, Config changes): a cheaper schedule of our recipe
    through its `train.py` flags."""
    if any(item.partition("=")[0] not in SCHEDULE_FIELDS for item in spec.split(",")):
        raise ValueError(f"a schedule changes only {', '.join(SCHEDULE_FIELDS)}. "
                         f"Received: {spec!r}")
    return "ours, " + ", ".join(item.replace("_", " ").replace("=", " ")
                                for item in spec.split(",")), common.parse_variant(":" + spec)[1]


def _frontier_goals(frontier, reference_seconds, reference_final):
    """The cheapest schedule meeting each frontier goal, or None; and the most
    accurate schedule within 3x the reference's time, or None."""
    def best(budget, accuracy):
        met = [p for p in frontier if p["train_seconds"] <= budget
               and p["sum_accuracy"] >= accuracy]
        return min(met, key=lambda p: p["train_seconds"])["name"] if met else None
    within = [p for p in frontier if p["train_seconds"] <= 3 * reference_seconds]
    return {"third_of_reference_time_reaches_reference_final":
            best(reference_seconds / 3, reference_final),
            "reference_time_reaches_99.5": best(reference_seconds, 0.995),
            "most_accurate_within_3x": (max(within, key=lambda p: p["sum_accuracy"])["name"]
                                        if within else None)}


def time_to_accuracy(config, splits, quick, work, schedules):
    """Per-epoch curves of ours, the keras-io reference, seed-000 and our shorter schedules.

    Args:
        schedules: `parse_schedule` results: runs of our recipe with one flag
            changed (fewer epochs, smaller width), the frontier.

    Returns:
        `(results, our model)`: results hold `curves` (per model, per epoch),
        the final 100,000-pair figures of ours, the `frontier` (each schedule's
        final point), the cost of the default against the reference's 15
        epochs, and the goals.
    """
    test = splits["test"]
    # A previous run's training folders would be refused (or, for the same
    # run, resumed): every run here starts clean.
    shutil.rmtree(work, ignore_errors=True)
    curves = {}
    curve = _Curve(*test, config.seed)
    model, _ = train(config, os.path.join(work, "ours"), datasets=splits, verbose=0,
                     callbacks=[curve])
    curves["ours"] = curve.points
    ours_pairs = evaluate(model, *test)
    for name, build, batch_size, epochs in (("reference", reference_model, 128, 15),
                                            ("seed000", seed000_model, 32, 10)):
        keras.utils.set_random_seed(config.seed)
        other = build()
        train_ds = data.make_dataset(*splits["train"], batch_size=batch_size,
                                     training=True, seed=config.seed)
        curve = _Curve(*test, config.seed)
        other.fit(train_ds, epochs=1 if quick else epochs, verbose=0, shuffle=False,
                  callbacks=[curve])
        curves[name] = curve.points
    frontier = []
    for i, (name, changes) in enumerate(schedules):
        curve = _Curve(*test, config.seed)
        train(dataclasses.replace(config, **changes), os.path.join(work, f"frontier{i}"),
              datasets=splits, verbose=0, callbacks=[curve])
        curves[name] = curve.points
        last = curve.points[-1]
        frontier.append({"name": name, "epochs": last["epoch"],
                         "train_seconds": last["train_seconds"],
                         "sum_accuracy": last["sum_accuracy"]})
    reference_final = curves["reference"][-1]["sum_accuracy"]
    reference_seconds = curves["reference"][-1]["train_seconds"]
    reference_time = first_seconds(curves["reference"], reference_final)
    ours_time = first_seconds(curves["ours"], reference_final)
    results = {
        "curves": curves,
        "ours_test_pairs": ours_pairs,
        "frontier": frontier,
        "reference_final_sum_accuracy": reference_final,
        "reference_train_seconds": reference_seconds,
        # Goal: the default's whole training <= 6x the reference's 15 epochs.
        "cost_ratio": curves["ours"][-1]["train_seconds"] / reference_seconds,
        "frontier_goals": _frontier_goals(frontier, reference_seconds, reference_final),
        "seconds_to_reference_final": {"reference": reference_time, "ours": ours_time},
        "seconds_to": {name: {str(a): first_seconds(points, a) for a in (0.99, 0.995, 0.996)}
                       for name, points in curves.items()},
    }
    results["goal_ratio"] = (ours_time / reference_time
                             if ours_time is not None and reference_time else None)
    return results, model


def plot_time_to_accuracy(results, path, machine=None):
    """Sum error rate against training seconds, both axes log: every curve, and the
    frontier's final points."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.8), dpi=120)
    axes = figure.subplots()
    frontier = {p["name"] for p in results["frontier"]}
    for name, points in results["curves"].items():
        seconds = [p["train_seconds"] for p in points]
        errors = [max(1 - p["sum_accuracy"], 1e-4) for p in points]
        axes.plot(seconds, errors, marker="o", markersize=2.5,
                  linewidth=0.9 if name in frontier else 1.6,
                  linestyle="--" if name in frontier else "-", label=name)
    axes.scatter([p["train_seconds"] for p in results["frontier"]],
                 [max(1 - p["sum_accuracy"], 1e-4) for p in results["frontier"]],
                 s=60, marker="*", color="black", zorder=3, label="frontier (final points)")
    axes.axhline(1 - results["reference_final_sum_accuracy"], color="gray", linestyle=":",
                 label="reference's final sum accuracy")
    axes.axvline(results["reference_train_seconds"], color="gray", linestyle="-.",
                 linewidth=0.8, label="reference's 15-epoch time (x1/3, x1, x3)")
    for factor in (1 / 3, 3):
        axes.axvline(factor * results["reference_train_seconds"], color="gray",
                     linestyle="-.", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("training wall-clock (s), evaluation excluded")
    axes.set_ylabel("sum error rate, 10,000 test pairs")
    where = f" ({machine['cpu']}, {machine['vector_isa']})" if machine else ""
    axes.set_title("Time to accuracy on 2 CPU cores" + where, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)


def format_time_to_accuracy(t):
    """The part's table, as `python -m bench` prints it."""
    lines = []
    lines.append("1. Time to accuracy (10,000 test pairs, one seed-fixed number each)")
    lines.append("   model                    epochs  train s   final digit   final sum"
                 "   s to 99.0% / 99.5% / 99.6% sum")
    for name, points in t["curves"].items():
        to = [first_seconds(points, a) for a in (0.99, 0.995, 0.996)]
        to = " / ".join("never" if v is None else f"{v:.0f}" for v in to)
        last = points[-1]
        lines.append(f"   {name:<26} {last['epoch']:>3} {last['train_seconds']:>8.1f}   "
                     f"{100 * last['digit_accuracy']:>9.2f}%  {100 * last['sum_accuracy']:>9.2f}%"
                     f"   {to}")
    lines.append(f"   the default's training: {t['cost_ratio']:.2f}x the reference's 15 epochs "
                 f"({t['reference_train_seconds']:.0f} s)")
    goals = t["frontier_goals"]
    lines.append("   frontier: <= 1/3 of the reference's time reaching its final "
                 f"{100 * t['reference_final_sum_accuracy']:.2f}%: "
                 f"{goals['third_of_reference_time_reaches_reference_final'] or 'none'}; "
                 f"<= 1x reaching 99.5%: {goals['reference_time_reaches_99.5'] or 'none'}; "
                 f"most accurate within 3x: {goals.get('most_accurate_within_3x') or 'none'}")
    ratio = t["goal_ratio"]
    lines.append("   ours reaches the reference's final sum accuracy in "
                 + ("never" if ratio is None else f"{ratio:.2f}x") + " the reference's time")
    o = t["ours_test_pairs"]
    lines.append(f"   ours on all {o['pairs']:,} pairs: digit {100 * o['digit_accuracy']:.2f}%, "
                 f"sum {100 * o['sum_accuracy']:.2f}%")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--work-dir", default=os.path.join("bench", "work"),
                        help="training folders (removed at the start)")
    parser.add_argument("--plot", default=PLOT, help="the time-to-accuracy plot")
    parser.add_argument("--frontier", nargs="+", default=list(FRONTIER),
                        help="cheaper schedules of our recipe: epochs=N, "
                             "conv_filters=A/B/C, members=N, stem=S, stage_blocks=A/B, "
                             "comma-separated "
                             "(default: %(default)s)")


def schedules_of(args):
    """The frontier's `parse_schedule`s; one of one epoch with `--quick`."""
    schedules = [parse_schedule(spec) for spec in args.frontier]
    if args.quick:
        schedules = [(name, dict(changes, epochs=1)) for name, changes in schedules[:1]]
    return schedules


def main(argv=None):
    parser = common.parser(__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    config, splits = common.config_and_splits(args.data, args.quick)
    results, _ = time_to_accuracy(config, splits, args.quick, args.work_dir, schedules_of(args))
    record = machine()
    plot_time_to_accuracy(results, args.plot, record)
    common.save_parts(args.output, {"time_to_accuracy": results})
    print(format_machine(record) + "\n\n" + format_time_to_accuracy(results))
    print(f"\nWrote {args.output} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
