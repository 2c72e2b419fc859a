"""Scaling: training examples/s of two local workers against one process, same global batch.

    python -m bench.multi_worker [--data PATH] [--steps 150] [--quick]

Two `MultiWorkerMirroredStrategy` workers on 127.0.0.1 with one TensorFlow
thread each (64 examples per worker per step) against one process with two
threads on the default strategy (128 per step): the same cores, the same
global batch, so the ratio is the cost of the collectives on loopback. Adds
`multi_worker_scaling` to bench/results.json (the other parts are kept) and
prints it. The model's gradient all-reduce size is recorded beside it.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

LINK_BITS_PER_S = 10e9  # The "10 Gb/s link" of the README's estimate.


def measure(args):
    """Runs in a child process: trains `args.steps` steps, prints one JSON line."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    from bench.efficiency import StepTimer
    from mnist_sum_keras import data
    from mnist_sum_keras.config import Config
    from mnist_sum_keras.model import with_member_targets
    from mnist_sum_keras.train import compiled_model

    config = Config(data_path=args.data)
    if args.quick:
        config = dataclasses.replace(config, conv_filters=(4, 8), feature_units=16,
                                     sum_units=(16,))
    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if os.environ.get("TF_CONFIG")
                else tf.distribute.get_strategy())
    keras.utils.set_random_seed(config.seed)
    (x, y), _ = data.load_mnist(args.data)
    model = compiled_model(config, strategy, args.steps)
    dataset = with_member_targets(data.make_dataset(
        x, y, batch_size=args.global_batch, training=True, seed=config.seed), model
    ).take(1 + args.steps)
    timer = StepTimer()
    model.fit(dataset, verbose=0, shuffle=False, callbacks=[timer])
    # From the end of the first step (tracing and start-up) to the end of the last.
    seconds_per_step = (timer.last - timer.first) / timer.steps
    print(json.dumps({"examples_per_s": args.global_batch / seconds_per_step,
                      "trainable_bytes": 4 * sum(int(w.numpy().size)
                                                 for w in model.trainable_weights)}))


def _child(args, threads, env=None):
    command = [sys.executable, "-m", "bench.multi_worker", "--measure", "--threads",
               str(threads), "--steps", str(args.steps), "--global-batch",
               str(args.global_batch)] + (["--data", args.data] if args.data else []) + (
        ["--quick"] if args.quick else [])
    return subprocess.Popen(command, env=dict(os.environ, **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process, timeout):
    stdout, stderr = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"a measuring process failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def scaling(args, timeout=900):
    """One process, two threads; then two workers, one thread each."""
    one = _result(_child(args, threads=2), timeout)
    from mnist_sum_keras.distribute import local_cluster

    workers = [_child(args, threads=1, env={"TF_CONFIG": tf_config})
               for tf_config in local_cluster(2)]
    try:
        two = [_result(p, timeout) for p in workers]
    finally:
        for p in workers:
            p.kill()
    step_bytes = one["trainable_bytes"]
    # A ring all-reduce over 2 workers sends and receives the gradient once.
    link_ms = 1000 * 8 * step_bytes / LINK_BITS_PER_S
    one_step_ms = 1000 * args.global_batch / one["examples_per_s"]
    return {
        "global_batch": args.global_batch, "steps": args.steps,
        "one_process_two_threads_examples_per_s": round(one["examples_per_s"], 1),
        "two_workers_one_thread_examples_per_s": round(two[0]["examples_per_s"], 1),
        "two_workers_over_one_process": round(two[0]["examples_per_s"]
                                              / one["examples_per_s"], 3),
        "gradient_bytes_per_step": step_bytes,
        "all_reduce_ms_at_10_gbit_per_s": round(link_ms, 3),
        "one_process_step_ms": round(one_step_ms, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="local MNIST npz (default: download "
                        "or $MNIST_SUM_DATA)")
    parser.add_argument("--steps", type=int, default=150, help="timed steps per run")
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny model, for the test that keeps this running")
    parser.add_argument("--output", default=None, help="default: bench/results.json")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        measure(args)
        return 0
    # Imported here: the --measure child sets its threads before TensorFlow starts.
    from bench import common

    figures = scaling(args)
    output = args.output or common.RESULTS
    common.save_parts(output, {"multi_worker_scaling": figures})
    print(json.dumps(figures, indent=2))
    print(f"\nWrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
