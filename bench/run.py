"""Speed benchmarks, each a ratio against a reference measured in the same run.

    python -m bench [--data PATH] [--quick]

Prints a table and writes bench/results.json. `--quick` shrinks every part to
seconds (used by a test so the benchmark cannot rot); its figures mean nothing.
"""

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from bench.profile import format_profile, profile_training
from mnist_sum_keras import data
from mnist_sum_keras.config import NUM_DIGITS, NUM_SUMS, Config
from mnist_sum_keras.evaluate import evaluate
from mnist_sum_keras.export import export_saved_model
from mnist_sum_keras.loading import SavedModelPredictor
from mnist_sum_keras.model import build_model, compile_model
from mnist_sum_keras.train import train

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
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


def time_to_accuracy(config, splits, quick, work, short_epochs):
    """Per-epoch curves of ours, the keras-io reference and seed-000 on one pipeline.

    Returns:
        `(results, our model)`: results hold `curves` (per model, per epoch),
        the final 100,000-pair figures of ours, the `short_schedule` run of our
        recipe with `short_epochs` epochs, and the goals.
    """
    test = splits["test"]
    # A previous run's checkpoints would be taken for this run's best epochs.
    for name in ("ours", "short"):
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)
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
    short = dataclasses.replace(config, epochs=short_epochs)
    curve = _Curve(*test, config.seed)
    train(short, os.path.join(work, "short"), datasets=splits, verbose=0, callbacks=[curve])
    reference_final = curves["reference"][-1]["sum_accuracy"]
    reference_time = first_seconds(curves["reference"], reference_final)
    ours_time = first_seconds(curves["ours"], reference_final)
    results = {
        "curves": curves,
        "ours_test_pairs": ours_pairs,
        "short_schedule": {"epochs": short_epochs,
                           "train_seconds": curve.points[-1]["train_seconds"],
                           "sum_accuracy": curve.points[-1]["sum_accuracy"],
                           "curve": curve.points},
        "reference_final_sum_accuracy": reference_final,
        "seconds_to_reference_final": {"reference": reference_time, "ours": ours_time},
        "seconds_to": {name: {str(a): first_seconds(points, a) for a in (0.99, 0.995, 0.996)}
                       for name, points in curves.items()},
    }
    results["goal_ratio"] = (ours_time / reference_time
                             if ours_time is not None and reference_time else None)
    return results, model


def plot_time_to_accuracy(results, path):
    """Sum error rate (log axis) against training seconds, one line per model."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=120)
    axes = figure.subplots()
    lines = dict(results["curves"], **{
        f"ours, {results['short_schedule']['epochs']} epochs": results["short_schedule"]["curve"]})
    for name, points in lines.items():
        seconds = [p["train_seconds"] for p in points]
        errors = [max(1 - p["sum_accuracy"], 1e-4) for p in points]
        axes.plot(seconds, errors, marker="o", markersize=3, label=name)
    axes.axhline(1 - results["reference_final_sum_accuracy"], color="gray", linestyle=":",
                 label="reference's final sum accuracy")
    axes.set_yscale("log")
    axes.set_xlabel("training wall-clock (s), evaluation excluded")
    axes.set_ylabel("sum error rate, 10,000 test pairs")
    axes.set_title("Time to accuracy on 2 CPU cores")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def pipeline_headroom(config, splits, steps, train_steps_per_s):
    """Batches/s of the training pipeline alone / training steps/s from memory.

    `train_steps_per_s` is part 3's figure at `config.batch_size`: the one
    measurement of the model fed from memory serves both parts.
    """
    images, digits = splits["train"]
    ds = data.make_dataset(images, digits, batch_size=config.batch_size, training=True,
                           seed=config.seed)
    for _ in ds.take(5):
        pass
    pipeline = 0.0
    for _ in range(3):  # The best of three passes, as for the training steps/s.
        start = time.perf_counter()
        count = sum(1 for _ in ds.take(steps))
        pipeline = max(pipeline, count / (time.perf_counter() - start))
    return {"pipeline_batches_per_s": pipeline, "train_steps_per_s": train_steps_per_s,
            "ratio": pipeline / train_steps_per_s}


def model_flops(model):
    """Multiply-adds x 2 per example of the forward pass, from the layer shapes.

    Counts Conv2D (H_out * W_out * k_h * k_w * C_in * C_out) and Dense
    (inputs * units); batch-norm, activations and pooling are elementwise and
    left out, so this slightly undercounts.
    """
    flops = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w, c_in, _ = layer.kernel.shape
            flops += 2 * h * w * k_h * k_w * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            flops += 2 * int(np.prod(layer.kernel.shape))
    return flops


def matmul_flops_per_s(size, repeats):
    """float32 matrix-multiply FLOP/s of this machine (large tf.linalg.matmul).

    The best of `repeats` calls, as the training steps/s it is compared with.
    """
    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    tf.linalg.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


class _StepTimer(keras.callbacks.Callback):
    """Wall-clock from the end of the first training step to the end of the last."""

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if batch == 0:
            self.first = now
        self.last, self.steps = now, batch


def training_steps_per_s(config, splits, steps, repeats=3):
    """Training steps/s of `build_model(config)` fed from memory (a cached pipeline).

    Timed between the ends of the first and last steps, so the start and end of
    `fit` are left out; the best of `repeats` passes, because this shared machine
    has slow spells (seen as whole epochs running at 60% speed) that one pass
    can land in.
    """
    images, digits = splits["train"]
    ds = data.make_dataset(images, digits, batch_size=config.batch_size, training=True,
                           seed=config.seed).take(steps).cache()
    for _ in ds:  # Fill the cache: the model is then fed from memory.
        pass
    model = compile_model(build_model(config), config, steps)
    model.fit(ds.take(3), verbose=0, shuffle=False)
    best = 0.0
    for _ in range(repeats):
        timer = _StepTimer()
        model.fit(ds, verbose=0, shuffle=False, callbacks=[timer])
        best = max(best, timer.steps / (timer.last - timer.first))
    return best


def compute_efficiency(config, splits, steps, matmul_size, batch_sizes):
    """Training FLOP/s of the default model / matmul FLOP/s, and steps/s by batch.

    Also the default batch size with Keras' own (unfused) batch-norm, so the
    fused layer's speed-up is a ratio taken in the same run.
    """
    forward = model_flops(build_model(config))
    by_batch = {}
    for batch_size in batch_sizes:
        steps_per_s = training_steps_per_s(
            dataclasses.replace(config, batch_size=batch_size), splits, steps)
        by_batch[batch_size] = {"steps_per_s": steps_per_s,
                                "examples_per_s": steps_per_s * batch_size}
    keras_bn = training_steps_per_s(
        dataclasses.replace(config, fused_batch_norm=False), splits, steps)
    peak = matmul_flops_per_s(matmul_size, 5)
    # Training = forward + backward, about 3x the forward FLOPs.
    achieved = 3 * forward * by_batch[config.batch_size]["examples_per_s"]
    return {"forward_flops_per_example": forward, "train_flops_per_s": achieved,
            "matmul_flops_per_s": peak, "fraction_of_matmul": achieved / peak,
            "by_batch_size": by_batch,
            "keras_batch_norm_steps_per_s": keras_bn,
            "fused_batch_norm_speedup": by_batch[config.batch_size]["steps_per_s"] / keras_bn}


def serving_speed(model, saved_model_path, images, calls, batch):
    """Pairs/s at a large batch and single-request latency: served vs Keras paths."""
    served = SavedModelPredictor(saved_model_path)
    signature = served._serve
    numbers = (np.arange(len(images)) % NUM_DIGITS).astype(np.int32)
    x_big, n_big = images[:batch], numbers[:batch]
    paths = {
        "served": lambda x, n: signature(image=tf.constant(x), number=tf.constant(n)),
        "keras_predict": lambda x, n: model.predict([x, n], verbose=0, batch_size=len(x)),
        "keras_call": lambda x, n: model([tf.constant(x), tf.constant(n)], training=False),
    }
    rows = {}
    for name, call in paths.items():
        call(x_big, n_big)
        start = time.perf_counter()
        repeats = 5
        for _ in range(repeats):
            out = call(x_big, n_big)
            _ = np.asarray(out["sum"] if "sum" in out else out["sum_probabilities"])
        pairs_per_s = repeats * len(x_big) / (time.perf_counter() - start)
        latencies = []
        for i in range(calls):
            x1, n1 = images[i % len(images)][None], numbers[i % len(images)][None]
            start = time.perf_counter()
            out = call(x1, n1)
            _ = np.asarray(out["sum"] if "sum" in out else out["sum_probabilities"])
            latencies.append(time.perf_counter() - start)
        rows[name] = {"pairs_per_s_batch": pairs_per_s,
                      "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
                      "latency_p99_ms": 1000 * float(np.percentile(latencies, 99))}
    return rows


def exhaustive_eval_seconds(saved_model_path, images, digits):
    """Wall-clock of the 100,000-pair evaluation through the served signature."""
    served = SavedModelPredictor(saved_model_path)
    start = time.perf_counter()
    figures = evaluate(served, images, digits, batch_size=1000)
    return time.perf_counter() - start, figures


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="local MNIST npz (default: download "
                        "or $MNIST_SUM_DATA)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings, for the test that keeps this running")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--work-dir", default=os.path.join("bench", "work"))
    parser.add_argument("--plot", default=PLOT, help="the time-to-accuracy plot")
    # 7 epochs of ours take about as long as the reference's 15 on 2 cores.
    parser.add_argument("--short-epochs", type=int, default=7,
                        help="epochs of the short schedule of our recipe")
    args = parser.parse_args(argv)

    config = dataclasses.replace(Config(), data_path=args.data)
    (x, y), (x_test, y_test) = data.load_mnist(args.data)
    train_split, val_split = data.split_validation(x, y, config.validation_size)
    if args.quick:
        config = dataclasses.replace(config, epochs=1, conv_filters=(4, 8),
                                     feature_units=16, sum_units=(16,))
        train_split = tuple(a[:512] for a in train_split)
        val_split = tuple(a[:128] for a in val_split)
        x_test, y_test = x_test[:100], y_test[:100]
    splits = {"train": train_split, "validation": val_split, "test": (x_test, y_test)}
    quick = args.quick
    results = {"machine": machine(), "config": dataclasses.asdict(config),
               "quick": quick}

    results["time_to_accuracy"], model = time_to_accuracy(
        config, splits, quick, args.work_dir, short_epochs=1 if quick else args.short_epochs)
    plot_time_to_accuracy(results["time_to_accuracy"], args.plot)
    results["compute"] = compute_efficiency(
        config, splits, 5 if quick else 60, 256 if quick else 4096,
        [config.batch_size] if quick else sorted({64, 128, 256, 512, 1024,
                                                  config.batch_size}))
    results["pipeline"] = pipeline_headroom(
        config, splits, 10 if quick else 200,
        results["compute"]["by_batch_size"][config.batch_size]["steps_per_s"])
    results["profile"] = {
        name: profile_training(dataclasses.replace(config, fused_batch_norm=fused),
                               3 if quick else 20, os.path.join(args.work_dir, "profile", name))
        for name, fused in (("fused_batch_norm", True), ("keras_batch_norm", False))}
    saved = export_saved_model(model, os.path.join(args.work_dir, "served"))
    results["serving"] = serving_speed(model, saved, x_test, 20 if quick else 1000,
                                       100 if quick else 1000)
    seconds, figures = exhaustive_eval_seconds(saved, x_test, y_test)
    results["exhaustive_eval"] = {"seconds": seconds, **figures}

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)
    print(format_table(results))
    print(f"\nWrote {args.output}")
    return 0


def format_table(r):
    t, p, c, s = r["time_to_accuracy"], r["pipeline"], r["compute"], r["serving"]
    m = r["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, TF {m['tensorflow']}, "
             f"Keras {m['keras']}", ""]
    lines.append("1. Time to accuracy (10,000 test pairs, one seed-fixed number each)")
    lines.append("   model        epochs  train s   final digit   final sum"
                 "   s to 99.0% / 99.5% / 99.6% sum")
    rows = dict(t["curves"], short_schedule=t["short_schedule"]["curve"])
    for name, points in rows.items():
        to = [first_seconds(points, a) for a in (0.99, 0.995, 0.996)]
        to = " / ".join("never" if v is None else f"{v:.0f}" for v in to)
        last = points[-1]
        lines.append(f"   {name:<14} {last['epoch']:>3} {last['train_seconds']:>8.1f}   "
                     f"{100 * last['digit_accuracy']:>9.2f}%  {100 * last['sum_accuracy']:>9.2f}%"
                     f"   {to}")
    ratio = t["goal_ratio"]
    lines.append(f"   ours reaches the reference's final sum accuracy "
                 f"({100 * t['reference_final_sum_accuracy']:.2f}%) in "
                 + ("never" if ratio is None else f"{ratio:.2f}x") + " the reference's time")
    o = t["ours_test_pairs"]
    lines.append(f"   ours on all {o['pairs']:,} pairs: digit {100 * o['digit_accuracy']:.2f}%, "
                 f"sum {100 * o['sum_accuracy']:.2f}%")
    lines.append("2. Pipeline headroom")
    lines.append(f"   pipeline {p['pipeline_batches_per_s']:.0f} batches/s / training "
                 f"{p['train_steps_per_s']:.1f} steps/s = {p['ratio']:.0f}x")
    lines.append("3. Compute efficiency")
    lines.append(f"   {c['forward_flops_per_example'] / 1e6:.1f} MFLOP forward per example; "
                 f"training {c['train_flops_per_s'] / 1e9:.1f} GFLOP/s / matmul "
                 f"{c['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s = "
                 f"{100 * c['fraction_of_matmul']:.1f}%")
    for batch_size, row in c["by_batch_size"].items():
        lines.append(f"   batch {batch_size:>5}: {row['steps_per_s']:7.1f} steps/s "
                     f"{row['examples_per_s']:8.0f} examples/s")
    lines.append(f"   Keras batch-norm at batch {r['config']['batch_size']}: "
                 f"{c['keras_batch_norm_steps_per_s']:.1f} steps/s; fused batch-norm "
                 f"{c['fused_batch_norm_speedup']:.2f}x faster")
    for name, profile in r["profile"].items():
        lines.append(f"   profile of a training step, {name.replace('_', ' ')}:")
        lines.append(format_profile(profile))
    lines.append("4. Serving speed")
    for name, row in s.items():
        lines.append(f"   {name:<14} {row['pairs_per_s_batch']:>9.0f} pairs/s at batch; "
                     f"latency p50 {row['latency_p50_ms']:.2f} ms, "
                     f"p99 {row['latency_p99_ms']:.2f} ms")
    lines.append(f"   100,000-pair evaluation through serving_default: "
                 f"{r['exhaustive_eval']['seconds']:.1f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
