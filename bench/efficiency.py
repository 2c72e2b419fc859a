"""Compute efficiency: training FLOP/s against matmul FLOP/s, steps/s by batch size, the
fused batch-norm's speed-up, the pipeline's headroom and a profile of a step.

    python -m bench.efficiency [--data PATH] [--quick]

Writes `compute`, `pipeline` and `profile` into bench/results.json (its other
parts are kept) and prints them.
"""

import dataclasses
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from bench import common
from bench.machine import format_machine, machine
from bench.profile import format_profile, profile_training
from mnist_sum_keras import data
from mnist_sum_keras.model import build_model, compile_model, with_member_targets


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


class StepTimer(keras.callbacks.Callback):
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
    ds = with_member_targets(data.make_dataset(images, digits, batch_size=batch_size,
                                               training=True, seed=seed), model)
    ds = ds.take(steps).cache()
    for _ in ds:  # Fill the cache: the model is then fed from memory.
        pass
    model.fit(ds.take(3), verbose=0, shuffle=False)
    best = 0.0
    for _ in range(repeats):
        timer = StepTimer()
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


def efficiency(config, splits, quick, work_dir):
    """The `compute`, `pipeline` and `profile` parts of bench/results.json."""
    compute = compute_efficiency(
        config, splits, 5 if quick else 60, 256 if quick else 4096,
        [config.batch_size] if quick else sorted({64, 128, 256, 512, 1024,
                                                  config.batch_size}))
    pipeline = pipeline_headroom(
        config, splits, 10 if quick else 200,
        compute["by_batch_size"][config.batch_size]["steps_per_s"])
    profile = {
        name: profile_training(dataclasses.replace(config, fused_batch_norm=fused),
                               3 if quick else 20, os.path.join(work_dir, "profile", name))
        for name, fused in (("fused_batch_norm", True), ("keras_batch_norm", False))}
    return {"compute": compute, "pipeline": pipeline, "profile": profile}


def format_efficiency(r):
    """The parts' table, as `python -m bench` prints it (`r` holds the parts and `config`)."""
    p, c = r["pipeline"], r["compute"]
    lines = []
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
    return "\n".join(lines)


def main(argv=None):
    parser = common.parser(__doc__)
    parser.add_argument("--work-dir", default=os.path.join("bench", "work"),
                        help="where the profiler's traces go")
    args = parser.parse_args(argv)
    config, splits = common.config_and_splits(args.data, args.quick)
    parts = efficiency(config, splits, args.quick, args.work_dir)
    common.save_parts(args.output, parts)
    print(format_machine(machine()) + "\n\n"
          + format_efficiency(dict(parts, config=dataclasses.asdict(config))))
    print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
