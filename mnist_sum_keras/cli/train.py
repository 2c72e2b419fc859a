"""Trains the model and releases it under saved_models/mnist_sum/<version>/."""

import argparse
import dataclasses
import sys
import types

from mnist_sum_keras.config import DATA_ENV_VAR, STRATEGIES, Config

# Flags whose name is not the field's (`--data` is what every script takes).
FLAG_NAMES = {"data_path": "--data"}
EXTRA_HELP = {
    "batch_size": " The global batch is this times the number of replicas.",
    "data_path": f" Default: ${DATA_ENV_VAR}, else the download.",
}


def _add_config_flags(parser):
    """One flag per `Config` field, its help the field's docstring description."""
    defaults, descriptions = Config(), Config.field_help()
    group = parser.add_argument_group("training configuration (mnist_sum_keras.config.Config)")
    for field in dataclasses.fields(Config):
        default = getattr(defaults, field.name)
        kwargs = {"dest": field.name, "default": default,
                  "help": (descriptions[field.name] + EXTRA_HELP.get(field.name, "")
                           ).replace("%", "%%") + " (default: %(default)s)"}
        if field.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.type is tuple:
            kwargs.update(type=int, nargs="+", metavar="N")
        elif isinstance(field.type, types.UnionType):  # `str | None`
            kwargs.update(type=str, metavar="PATH")
        else:
            kwargs["type"] = field.type
        flag = FLAG_NAMES.get(field.name, "--" + field.name.replace("_", "-"))
        group.add_argument(flag, **kwargs)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    _add_config_flags(parser)
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="default: one device; mirrored: all local GPUs (or "
                             "--devices); multi-worker: the cluster in $TF_CONFIG")
    parser.add_argument("--devices", nargs="+", default=None,
                        help="devices for --strategy mirrored, e.g. /gpu:0 /gpu:1, or "
                             "/cpu:0 /cpu:1 to split a CPU into two replicas")
    parser.add_argument("--restart", action="store_true",
                        help="discard the state of an earlier, different or unrecorded run "
                             "in the training folder (<output-dir>/mnist_sum/training) and "
                             "train from the first epoch; without it such a folder is "
                             "refused, and the same run resumes")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                        help="Keras progress: 0 silent, 1 bar, 2 a line per epoch")
    return parser.parse_args(argv)


def main(argv=None):
    args = vars(parse_args(argv))
    verbose, strategy_name, devices, restart = (
        args.pop(k) for k in ("verbose", "strategy", "devices", "restart"))
    try:
        config = Config(**args)  # Config makes the lists of N flags tuples.
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # TensorFlow is imported only now, so that --help and bad flags answer at once.
    from mnist_sum_keras.data import DataError
    from mnist_sum_keras.distribute import make_strategy
    from mnist_sum_keras.multi_worker_shim import UntestedKerasError
    from mnist_sum_keras.train import run

    try:
        metrics = run(config, verbose=verbose, strategy=make_strategy(strategy_name, devices),
                      restart=restart)
    except (DataError, ValueError, UntestedKerasError) as e:  # RunFolderError too.
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
    print(f"TensorBoard: tensorboard --logdir {metrics['tensorboard_logs']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
