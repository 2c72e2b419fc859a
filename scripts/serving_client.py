"""Sends MNIST test images and numbers to a running TF Serving, prints answers."""

import argparse
import json
import sys
import urllib.error

from mnist_sum_keras.config import DATA_ENV_VAR
from mnist_sum_keras.data import DataError, load_mnist
from mnist_sum_keras.predict import check_numbers
from mnist_sum_keras.serving import DEFAULT_URL, FORMATS, predict


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, nargs="+", required=True,
                        help="one number 0..9 for all images, or one per image")
    parser.add_argument("--indices", type=int, nargs="+", default=[0],
                        help="MNIST test images to send (default: %(default)s)")
    parser.add_argument("--data", default=None,
                        help=f"local MNIST npz; default ${DATA_ENV_VAR}, else download")
    parser.add_argument("--url", default=DEFAULT_URL, help="default: %(default)s")
    parser.add_argument("--format", choices=FORMATS, default="instances",
                        help="row (instances) or column (inputs) request format")
    args = parser.parse_args(argv)
    try:
        numbers = check_numbers(args.number, len(args.indices))
        _, (x_test, y_test) = load_mnist(args.data)
        if not all(0 <= i < len(x_test) for i in args.indices):
            raise ValueError(f"--indices must be in 0..{len(x_test) - 1}. "
                             f"Received: {args.indices}")
        results = predict(x_test[args.indices], numbers, url=args.url,
                          request_format=args.format)
    except (DataError, ValueError, RuntimeError, urllib.error.URLError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for index, number, result in zip(args.indices, numbers, results):
        print(json.dumps({"index": index, "true_digit": int(y_test[index]),
                          "number": int(number), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
