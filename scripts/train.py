"""Trains the model and releases it under saved_models/mnist_sum/<version>/."""

import argparse
import dataclasses
import sys

from mnist_sum_keras.config import DATA_ENV_VAR, Config
from mnist_sum_keras.data import DataError
from mnist_sum_keras.distribute import STRATEGIES, make_strategy
from mnist_sum_keras.multi_worker_shim import UntestedKerasError
from mnist_sum_keras.train import run


def parse_args(argv=None):
    defaults = Config()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="examples per replica per step; the global batch is this "
                             "times the number of replicas (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--validation-size", type=int, default=defaults.validation_size)
    parser.add_argument(
        "--data", dest="data_path", default=defaults.data_path,
        help=f"local MNIST npz (Keras layout); default ${DATA_ENV_VAR}, "
             "else download with keras.datasets.mnist")
    parser.add_argument("--output-dir", default=defaults.output_dir,
                        help="receives mnist_sum/<version>/ (default: %(default)s)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="default: one device; mirrored: all local GPUs (or "
                             "--devices); multi-worker: the cluster in $TF_CONFIG")
    parser.add_argument("--devices", nargs="+", default=None,
                        help="devices for --strategy mirrored, e.g. /gpu:0 /gpu:1")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras progress: 0 silent, 1 bar, 2 a line per epoch")
    return parser.parse_args(argv)


def main(argv=None):
    args = vars(parse_args(argv))
    verbose, strategy_name, devices = (args.pop(k) for k in ("verbose", "strategy",
                                                             "devices"))
    try:
        config = dataclasses.replace(Config(), **args)
        metrics = run(config, verbose=verbose, strategy=make_strategy(strategy_name, devices))
    except (DataError, ValueError, UntestedKerasError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the last finished epoch is backed up under "
              f"{config.output_dir}/mnist_sum/training/; run the same command again "
              "to resume from it.", file=sys.stderr)
        return 130
    if not metrics["chief"]:
        print("\nWorker done; the chief worker evaluates and writes the model. "
              f"Weights sha256 {metrics['weights_sha256']}")
        return 0
    figures = metrics["test_pairs"]
    print(f"\nReleased version {metrics['version']}: {metrics['saved_model']} "
          f"and {metrics['keras_model']}")
    print(f"Test set, every image with each number 0..9 ({figures['pairs']:,} pairs):")
    for key in ("digit_accuracy", "sum_accuracy", "both_correct", "consistency"):
        print(f"  {key:<15} {100 * figures[key]:.2f}%")
    print(f"Training {metrics['train_seconds']:.0f} s on {metrics['replicas']} "
          f"replica(s), whole run {metrics['total_seconds']:.0f} s")
    print(f"Weights sha256 {metrics['weights_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
