"""Where a training step's time goes: a tf.profiler trace, summed by kind of op.

    python -m bench.profile [--batch-size N] [--steps N] [--keras-batch-norm] [--logdir DIR]

Traces `--steps` training steps of the default model (fed from memory, so
only the model is measured), then sums the op time in the trace by kind:
convolution forward and backward, batch-norm, augmentation, pooling, ... The
trace stays in `--logdir` for TensorBoard's profile plugin.
"""

import argparse
import collections
import dataclasses
import glob
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mnist_sum_keras.config import IMAGE_SHAPE, NUM_DIGITS, NUM_SUMS, Config
from mnist_sum_keras.model import build_model, compile_model, with_member_targets

# (kind, test on the op's scope path and type), first match wins.
KINDS = (
    # "distort", or "distort_1" when Keras numbers a second model's layer.
    ("augmentation", lambda path, op: "/distort" in path),
    ("conv backward", lambda path, op: "Conv2DBackprop" in op),
    ("conv forward", lambda path, op: "Conv2D" in op),
    ("batch-norm", lambda path, op: "_bn" in path),
    ("pooling", lambda path, op: "_pool" in path),
    ("relu", lambda path, op: "relu" in path.lower()),
    ("dense", lambda path, op: "MatMul" in op),
    ("optimizer", lambda path, op: "adamw" in path.lower() or "sgd" in path.lower()),
)


def _read_xspace(logdir):
    # The trace is an XSpace protobuf; TensorFlow ships its Python class but no
    # public API to read it (TensorBoard's profile plugin is the viewer).
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
                   key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"No *.xplane.pb trace under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    return space


def op_time_by_kind(space):
    """Sums the durations of the ops run inside the training step, by kind.

    Args:
        space: an `XSpace` from a `tf.profiler` trace.

    Returns:
        `{"kinds": {kind: share}, "top_ops": {op type: share}, "op_seconds": s}`,
        shares of the summed op time (both threads' ops, so it can exceed wall).
    """
    kinds, op_types = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Kernels of the compiled train step are named by their scope
                # inside the step function; the rest are runtime wrappers.
                if not name.startswith("StatefulPartitionedCall/") or ":" not in name:
                    continue
                path, op = name.rsplit(":", 1)
                kind = next((k for k, test in KINDS if test(path, op)), "other")
                kinds[kind] += event.duration_ps
                op_types[op] += event.duration_ps
    total = sum(kinds.values())
    if not total:
        raise ValueError("The trace holds no op of a training step")
    return {"kinds": {k: v / total for k, v in kinds.most_common()},
            "top_ops": {k: v / total for k, v in op_types.most_common(8)},
            "op_seconds": total / 1e12}


def profile_training(config, steps, logdir):
    """Traces `steps` training steps of `build_model(config)` on in-memory data."""
    rng = np.random.default_rng(config.seed)
    batch = config.batch_size
    x = {"image": rng.integers(0, 256, (batch,) + IMAGE_SHAPE, dtype=np.uint8),
         "number": rng.integers(0, NUM_DIGITS, (batch,), dtype=np.int32)}
    y = {"digit": rng.integers(0, NUM_DIGITS, (batch,)),
         "sum": rng.integers(0, NUM_SUMS, (batch,))}
    model = compile_model(build_model(config), config, steps)
    ds = with_member_targets(tf.data.Dataset.from_tensors((x, y)).repeat(), model)
    model.fit(ds, steps_per_epoch=5, verbose=0)  # Trace and warm up first.
    tf.profiler.experimental.start(logdir)
    try:
        model.fit(ds, steps_per_epoch=steps, verbose=0)
    finally:
        tf.profiler.experimental.stop()
    return op_time_by_kind(_read_xspace(logdir))


def format_profile(profile):
    lines = [f"   {100 * share:5.1f}%  {kind}" for kind, share in profile["kinds"].items()]
    lines.append("   largest op types: " + ", ".join(
        f"{op} {100 * share:.1f}%" for op, share in profile["top_ops"].items()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=Config.batch_size)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--keras-batch-norm", action="store_true",
                        help="profile with keras.layers.BatchNormalization instead of "
                        "the fused one (config.fused_batch_norm=False)")
    parser.add_argument("--logdir", default=None,
                        help="where the trace is written (default: a new temporary folder)")
    args = parser.parse_args(argv)
    config = dataclasses.replace(Config(), batch_size=args.batch_size,
                                 fused_batch_norm=not args.keras_batch_norm)
    logdir = args.logdir or tempfile.mkdtemp(prefix="mnist_sum_profile_")
    keras.utils.set_random_seed(config.seed)
    profile = profile_training(config, args.steps, logdir)
    print(f"Op time of {args.steps} training steps at batch {config.batch_size}: "
          f"{profile['op_seconds']:.2f} s (both threads), "
          f"{'fused' if config.fused_batch_norm else 'Keras'} batch-norm")
    print(format_profile(profile))
    print(f"Trace: {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
