"""Evaluates a trained model on the MNIST test set; writes metrics.json and plots."""

import argparse
import os
import sys

from mnist_sum_keras.config import DATA_ENV_VAR, Config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a .keras file or a SavedModel version folder")
    parser.add_argument("--data", default=None,
                        help=f"local MNIST npz; default ${DATA_ENV_VAR}, else download")
    parser.add_argument("--output-dir", default=None,
                        help="report folder (default: <model>-report beside the model)")
    parser.add_argument("--seed", type=int, default=Config().seed,
                        help="seed of the single-number pass (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--verbose", type=int, choices=(0, 1), default=1)
    args = parser.parse_args(argv)
    output_dir = args.output_dir or os.path.normpath(args.model) + "-report"

    from mnist_sum_keras.data import DataError, load_mnist
    from mnist_sum_keras.evaluate import evaluation_report
    from mnist_sum_keras.loading import load_any_model
    from mnist_sum_keras.report import format_table, write_report

    try:
        model = load_any_model(args.model)
        _, (images, digits) = load_mnist(args.data)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = evaluation_report(model, images, digits, seed=args.seed,
                               batch_size=args.batch_size, verbose=args.verbose)
    metrics = write_report(report, images, output_dir, args.model, args.data)
    print(format_table(metrics))
    print(f"\nWrote {os.path.join(output_dir, 'metrics.json')} and "
          f"{', '.join(metrics['plots'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
