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
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from mnist_sum_keras import data
from mnist_sum_keras.config import NUM_DIGITS, NUM_SUMS, Config
from mnist_sum_keras.evaluate import SavedModelPredictor, evaluate
from mnist_sum_keras.export import export_saved_model
from mnist_sum_keras.model import build_model, compile_model
from mnist_sum_keras.train import train

from bench.profile import format_profile, profile_training

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")


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


def time_to_accuracy(config, splits, quick, work):
    """Our default vs the reference: wall-clock of training and final accuracy."""
    rows = {}
    start = time.perf_counter()
    model, _ = train(config, os.path.join(work, "ours"), datasets=splits, verbose=0)
    seconds = time.perf_counter() - start
    rows["ours"] = {"epochs": config.epochs, "train_seconds": seconds,
                    **evaluate(model, *splits["test"])}
    keras.utils.set_random_seed(config.seed)
    reference = reference_model()
    train_ds = data.make_dataset(*splits["train"], batch_size=128, training=True,
                                 seed=config.seed)
    epochs = 1 if quick else 15
    start = time.perf_counter()
    reference.fit(train_ds, epochs=epochs, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    rows["reference"] = {"epochs": epochs, "train_seconds": seconds,
                         **evaluate(reference, *splits["test"])}
    rows["time_ratio"] = rows["ours"]["train_seconds"] / rows["reference"]["train_seconds"]
    return rows, model


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

    results["time_to_accuracy"], model = time_to_accuracy(config, splits, quick,
                                                          args.work_dir)
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
    lines.append("1. Time to accuracy (100,000 test pairs)")
    for name in ("ours", "reference"):
        row = t[name]
        lines.append(f"   {name:<10} {row['epochs']:>3} epochs {row['train_seconds']:>7.1f} s   "
                     f"digit {100 * row['digit_accuracy']:.2f}%  "
                     f"sum {100 * row['sum_accuracy']:.2f}%")
    lines.append(f"   ours / reference wall-clock: {t['time_ratio']:.2f}")
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
