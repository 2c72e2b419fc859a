"""Predicts the digit in your own images and its sum with a number.

An answer whose digit probability is below `predict.UNSURE_BELOW` ends in
"- unsure" ("unsure": true in --json). Every picture gets a line: one with no
digit in it (blank paper, noise) says why ("found": false in --json), the
others are answered, and the exit status is 3. A file that is not an image
(or a bad number, a missing model) is an error: exit status 2, no answers.
"""

import argparse
import json
import os
import sys

from mnist_sum_keras.config import MODEL_NAME, Config

# Where `train.py` releases by default: relative to the working directory.
RELEASED = os.path.join(Config().output_dir, MODEL_NAME)


def _number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"number must be an integer in 0..9. Received: {text!r}") from None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (PNG, JPEG, ...) of one digit each")
    parser.add_argument("--number", type=_number, nargs="+", required=True,
                        help="one number 0..9 for all images, or one per image")
    parser.add_argument("--model", default=None,
                        help="a .keras file or SavedModel folder (default: the newest "
                             f"released version under {RELEASED})")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    args = parser.parse_args(argv)

    from mnist_sum_keras.contract import check_numbers

    try:
        # Before any slow work.
        numbers = [int(n) for n in check_numbers(args.number, len(args.images))]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from mnist_sum_keras.export import latest_version
    from mnist_sum_keras.frontend import NoDigitError, load_image
    from mnist_sum_keras.loading import load_any_model
    from mnist_sum_keras.predict import predict_digits

    try:
        images, no_digit = {}, {}   # By position: a picture read, or why it has no digit.
        for i, path in enumerate(args.images):
            try:
                images[i] = load_image(path)
            except NoDigitError as e:
                no_digit[i] = e.words
        model_path = args.model or latest_version(RELEASED)
        if model_path is None:
            raise ValueError(f"No released model under {RELEASED}; pass --model")
        answered = {}
        if images:
            model = load_any_model(model_path)
            answered = dict(zip(images, predict_digits(
                model, list(images.values()), [numbers[i] for i in images])))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for i, path in enumerate(args.images):
        if i in no_digit:
            print(json.dumps({"image": path, "number": numbers[i], "found": False,
                              "reason": no_digit[i]}) if args.json
                  else f"{path}: {no_digit[i]}")
            continue
        result = answered[i]
        if args.json:
            print(json.dumps({"image": path, "found": True, **result}))
        else:
            print(f"{path}: digit {result['digit']} ({100 * result['digit_probability']:.1f}%)"
                  f" + {result['number']} = sum {result['sum']} "
                  f"({100 * result['sum_probability']:.1f}%)"
                  + (" - unsure" if result["unsure"] else ""))
    return 3 if no_digit else 0


if __name__ == "__main__":
    sys.exit(main())
