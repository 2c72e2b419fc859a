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

# Shorter schedules of the default recipe: fewer epochs, or fewer epochs of a narrower
# network, chosen on the validation split (docs/benchmarks.md).
FRONTIER = ("epochs=3,conv_filters=8/16/32", "epochs=4,conv_filters=8/16/32", "epochs=5",
            "epochs=6")
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


def parse_schedule(spec):
    """`"epochs=3"`, `"conv_filters=8/16/32"` or both, comma-separated -> (name, Config
    changes): a shorter schedule of our recipe through its `train.py` flags."""
    changes = {}
    for item in spec.split(","):
        field, _, value = item.partition("=")
        if field == "epochs":
            changes["epochs"] = int(value)
        elif field == "conv_filters":
            changes["conv_filters"] = tuple(int(v) for v in value.split("/"))
        else:
            raise ValueError(f"a schedule changes epochs or conv_filters. Received: {spec!r}")
    return "ours, " + ", ".join(item.replace("_", " ").replace("=", " ")
                                for item in spec.split(",")), changes


def _frontier_goals(frontier, reference_seconds, reference_final):
    """The cheapest schedule meeting each frontier goal, or None."""
    def best(budget, accuracy):
        met = [p for p in frontier if p["train_seconds"] <= budget
               and p["sum_accuracy"] >= accuracy]
        return min(met, key=lambda p: p["train_seconds"])["name"] if met else None
    return {"third_of_reference_time_reaches_reference_final":
            best(reference_seconds / 3, reference_final),
            "reference_time_reaches_99.5": best(reference_seconds, 0.995)}


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
        # Goal: the default's whole training <= 3x the reference's 15 epochs.
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


def steps_per_s_of(model, splits, steps, repeats=3, batch_size=128, seed=1):
    """Training steps/s of a compiled `model` fed from memory (a cached pipeline).

    Timed between the ends of the first and last steps, so the start and end of
    `fit` are left out; the best of `repeats` passes, because this shared machine
    has slow spells (seen as whole epochs running at 60% speed) that one pass
    can land in.
    """
    images, digits = splits["train"]
    ds = data.make_dataset(images, digits, batch_size=batch_size, training=True,
                           seed=seed).take(steps).cache()
    for _ in ds:  # Fill the cache: the model is then fed from memory.
        pass
    model.fit(ds.take(3), verbose=0, shuffle=False)
    best = 0.0
    for _ in range(repeats):
        timer = _StepTimer()
        model.fit(ds, verbose=0, shuffle=False, callbacks=[timer])
        best = max(best, timer.steps / (timer.last - timer.first))
    return best


def training_steps_per_s(config, splits, steps, repeats=3):
    """`steps_per_s_of` the model `config` builds, compiled as training compiles it."""
    model = compile_model(build_model(config), config, steps)
    return steps_per_s_of(model, splits, steps, repeats, config.batch_size, config.seed)


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


def vector_isa(flags, cap=None):
    """"AVX-512", "AVX2" (AVX2 + FMA, no AVX-512) or "older", from /proc/cpuinfo flags,
    as oneDNN uses it: `cap` is `$ONEDNN_MAX_CPU_ISA` (e.g. "AVX2" keeps an
    AVX-512 CPU's kernels to AVX2)."""
    if "avx512f" in flags and not (cap and cap.upper().startswith("AVX2")):
        return "AVX-512"
    return "AVX2" if {"avx2", "fma"} <= flags else "older"


def machine():
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="local MNIST npz (default: download "
                        "or $MNIST_SUM_DATA)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings, for the test that keeps this running")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--work-dir", default=os.path.join("bench", "work"))
    parser.add_argument("--plot", default=PLOT, help="the time-to-accuracy plot")
    parser.add_argument("--frontier", nargs="+", default=list(FRONTIER),
                        help="shorter schedules of our recipe: epochs=N, "
                             "conv_filters=A/B/C or both, comma-separated "
                             "(default: %(default)s)")
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

    schedules = [parse_schedule(spec) for spec in args.frontier]
    if quick:
        schedules = [(name, dict(changes, epochs=1)) for name, changes in schedules[:1]]
    results["time_to_accuracy"], model = time_to_accuracy(
        config, splits, quick, args.work_dir, schedules)
    plot_time_to_accuracy(results["time_to_accuracy"], args.plot, results["machine"])
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
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['vector_isa']}"
             + (f" (ONEDNN_MAX_CPU_ISA={m['onednn_max_cpu_isa']})"
                if m.get("onednn_max_cpu_isa") else "")
             + f", TF {m['tensorflow']}, Keras {m['keras']}", ""]
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
                 f"<= 1x reaching 99.5%: {goals['reference_time_reaches_99.5'] or 'none'}")
    ratio = t["goal_ratio"]
    lines.append("   ours reaches the reference's final sum accuracy in "
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
