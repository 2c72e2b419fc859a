"""predict_image vs serving_default on the MNIST test images sent as PNG files.

    python -m bench.agreement [--data PATH] [--model saved_models/mnist_sum/<version>]

Encodes every test image as a PNG, sends it to the `predict_image` signature
(decode + MNIST-style preprocessing in the graph) and the raw pixels to
`serving_default`, each with one seeded number, and prints both accuracies and
which answers differ. Prints figures; it is not a pass/fail test.
"""

import argparse
import os
import time

import numpy as np
import tensorflow as tf

from mnist_sum_keras.contract import PREDICT_IMAGE_KEY, SIGNATURE_KEY
from mnist_sum_keras.data import fixed_numbers, load_mnist
from mnist_sum_keras.export import latest_version


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST npz (default: $MNIST_SUM_DATA)")
    released = os.path.join("saved_models", "mnist_sum")
    parser.add_argument("--model", default=latest_version(released),
                        help="a SavedModel (default: the released, highest version)")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    if args.model is None:
        parser.error(f"no released model under {released}; pass --model")
    _, (images, digits) = load_mnist(args.data)
    numbers = fixed_numbers(len(images), seed=1)
    signatures = tf.saved_model.load(args.model).signatures
    pngs = [tf.io.encode_png(image[..., None]).numpy() for image in images]
    answers = {SIGNATURE_KEY: ([], []), PREDICT_IMAGE_KEY: ([], [])}
    seconds = dict.fromkeys(answers, 0.0)
    for start in range(0, len(images), args.batch):
        stop, number = start + args.batch, tf.constant(numbers[start:start + args.batch])
        for key, inputs in ((SIGNATURE_KEY, {"image": tf.constant(images[start:stop])}),
                            (PREDICT_IMAGE_KEY, {"image_bytes": tf.constant(pngs[start:stop])})):
            begin = time.perf_counter()
            out = signatures[key](**inputs, number=number)
            seconds[key] += time.perf_counter() - begin
            answers[key][0].extend(out["digit"].numpy())
            answers[key][1].extend(out["sum"].numpy())
    for key, (pred_digits, pred_sums) in answers.items():
        print(f"{key:<16} digit {100 * np.mean(np.array(pred_digits) == digits):.2f}%  "
              f"sum {100 * np.mean(np.array(pred_sums) == digits + numbers):.2f}%  "
              f"({len(images) / seconds[key]:,.0f} images/s)")
    raw, png = (np.array(answers[key]) for key in (SIGNATURE_KEY, PREDICT_IMAGE_KEY))
    differ = np.flatnonzero(np.any(raw != png, axis=0))   # digit or sum differs
    print(f"answers that differ: {len(differ)} of {len(images):,}")
    for i in differ[:20]:
        print(f"   test image {i} (a {digits[i]}) + {numbers[i]}: serving_default digit "
              f"{raw[0, i]} sum {raw[1, i]}, predict_image digit {png[0, i]} sum {png[1, i]}")


if __name__ == "__main__":
    main()
