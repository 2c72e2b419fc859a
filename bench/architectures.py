"""Training step time of network variants against the keras-io reference, in one process.

    python -m bench.architectures [--data PATH] [--steps 60] [--repeats 3]
                                  [--variant NAME:FIELD=VALUE,... ...] [--threads INTRA INTER]

Each variant is the default `Config` with some fields changed (tuples as
`16/32/64`), e.g. `shallow:stage_blocks=1/2`. Steps are timed
as `bench.efficiency` times them (batch 128, fed from memory, best of `--repeats`
passes, augmentation included) and printed in ms, as a ratio to the
reference's step, and as training FLOP/s against float32 matmul FLOP/s.
`--threads` sets TensorFlow's intra- and inter-op thread pools. Run it
once as is and once with `ONEDNN_MAX_CPU_ISA=AVX2` to see an AVX-512 machine's
convolutions limited to AVX2 kernels.
"""

import argparse
import dataclasses
import os
import sys

import keras

from bench.common import parse_variant
from bench.efficiency import (
    matmul_flops_per_s,
    model_flops,
    steps_per_s_of,
    training_steps_per_s,
)
from bench.machine import machine
from bench.time_to_accuracy import reference_model
from mnist_sum_keras import data
from mnist_sum_keras.config import Config
from mnist_sum_keras.model import build_model

VARIANTS = (
    "default:",
    "one network:members=1",
    "one block at 28x28:stage_blocks=1/2",
    "space-to-depth 32/64/128:stem=space_to_depth,conv_filters=32/64/128",
    "narrow 8/16/32:conv_filters=8/16/32",
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="local MNIST npz")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", nargs="+", default=list(VARIANTS))
    parser.add_argument("--threads", nargs=2, type=int, metavar=("INTRA", "INTER"),
                        default=None, help="TensorFlow's thread pools (default: its own)")
    args = parser.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(args.threads[1])
    variants = [parse_variant(spec) for spec in args.variant]
    config = Config()
    (x, y), _ = data.load_mnist(args.data)
    splits = {"train": (x[:args.steps * config.batch_size], y[:args.steps * config.batch_size])}
    m = machine()
    print(f"{m['cpu']}, {m['cores']} cores, {m['vector_isa']}"
          + (f" (ONEDNN_MAX_CPU_ISA={m['onednn_max_cpu_isa']})" if m["onednn_max_cpu_isa"]
             else "") + (f", threads {args.threads}" if args.threads else ""), flush=True)
    peak = matmul_flops_per_s(4096, 5)
    print(f"float32 matmul {peak / 1e9:.1f} GFLOP/s")
    keras.utils.set_random_seed(1)
    reference = 1000 / steps_per_s_of(reference_model(), splits, args.steps, args.repeats)
    print(f"{'keras-io reference':<40} {reference:6.1f} ms/step  1.00x", flush=True)
    for name, changes in variants:
        variant = dataclasses.replace(config, **changes)
        ms = 1000 / training_steps_per_s(variant, splits, args.steps, args.repeats)
        flops = model_flops(build_model(variant))
        achieved = 3 * flops * config.batch_size / (ms / 1000)
        print(f"{name:<40} {ms:6.1f} ms/step  {ms / reference:.2f}x  "
              f"{flops / 1e6:5.1f} MFLOP forward  {100 * achieved / peak:4.1f}% of matmul",
              flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
