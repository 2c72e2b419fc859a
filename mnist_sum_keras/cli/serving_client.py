"""Sends images and numbers to a running TF Serving (REST), prints the answers.

MNIST test images by index go to `serving_default`; image files (--images)
go as encoded bytes to `predict_image`, which preprocesses them in the graph.
"""

import argparse
import json
import sys
import urllib.error

from mnist_sum_keras.config import DATA_ENV_VAR
from mnist_sum_keras.contract import check_numbers
from mnist_sum_keras.serving import DEFAULT_URL, FORMATS, predict, predict_image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, nargs="+", required=True,
                        help="one number 0..9 for all images, or one per image")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--indices", type=int, nargs="+", default=[0],
                        help="MNIST test images to send (default: %(default)s)")
    source.add_argument("--images", nargs="+", metavar="FILE",
                        help="image files (PNG, JPEG, GIF, BMP) to send to predict_image")
    parser.add_argument("--data", default=None,
                        help=f"local MNIST npz; default ${DATA_ENV_VAR}, else download")
    parser.add_argument("--url", default=DEFAULT_URL, help="default: %(default)s")
    parser.add_argument("--format", choices=FORMATS, default="instances",
                        help="row (instances) or column (inputs) request format")
    args = parser.parse_args(argv)
    try:
        if args.images:
            numbers = check_numbers(args.number, len(args.images))
            contents = []
            for path in args.images:
                with open(path, "rb") as f:
                    contents.append(f.read())
            results = predict_image(contents, numbers, url=args.url,
                                    request_format=args.format)
            keys = [{"image": path} for path in args.images]
        else:
            from mnist_sum_keras.data import DataError, load_mnist

            numbers = check_numbers(args.number, len(args.indices))
            try:
                _, (x_test, y_test) = load_mnist(args.data)
            except DataError as e:
                raise ValueError(str(e)) from None
            if not all(0 <= i < len(x_test) for i in args.indices):
                raise ValueError(f"--indices must be in 0..{len(x_test) - 1}. "
                                 f"Received: {args.indices}")
            results = predict(x_test[args.indices], numbers, url=args.url,
                              request_format=args.format)
            keys = [{"index": i, "true_digit": int(y_test[i])} for i in args.indices]
    except (ValueError, RuntimeError, urllib.error.URLError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for key, number, result in zip(keys, numbers, results):
        print(json.dumps({**key, "number": int(number), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
