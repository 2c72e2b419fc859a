"""Real handwriting that is not MNIST's, per model: the UCI optical digits.

    python -m bench.foreign MODEL_DIR [MODEL_DIR ...]

The 1,797 digits of scikit-learn's `load_digits()`: the test part of UCI's
"Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak 1998), written
by 43 people who are not MNIST's writers and scanned by another scanner, their
32x32 bitmaps reduced to 8x8 blocks of ink counts 0..16. scikit-learn ships
them inside its package, so nothing is downloaded. Each SavedModel reads them
two ways, and right digits and sums (number = index mod 10) are printed:
- "MNIST's layout": each digit's counts scaled to 0..255 and laid out as MNIST
  lays out its digits (longest side 20 px, centre of mass at the centre: the
  front end's own last step, `frontend.stages.mnist_box`), read by `serving_default`.
  This compares weights.
- "picture": the same counts as a picture through `predict_image`, as a user
  would send a tight crop of a scan: 32x32 light ink on black, and 64x64 dark
  ink on white (bilinear); what the front end refuses counts as wrong and is
  reported.
Needs scikit-learn (`pip install -e ".[bench]"`).
"""

import io
import os
import sys

import numpy as np

from bench.common import signatures

PICTURE_SIDE = 32


def uci_digits():
    """`(digits, images)`: int labels and uint8 `(1797, 8, 8)` ink counts scaled to 0..255."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.round(data.images * (255 / 16)).astype(np.uint8)
    return data.target.astype(np.int64), images


def mnist_layout(images):
    """uint8 `(n, 28, 28)`: each white-on-black image boxed and centred as MNIST's."""
    import tensorflow as tf

    from mnist_sum_keras.frontend.stages import mnist_box

    box = tf.function(mnist_box, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    return np.stack([box(tf.constant(image, tf.float32)).numpy() for image in images])


def picture(image, side=PICTURE_SIDE):
    """PNG bytes of a uint8 greyscale image resized (bilinear) to `side` x `side`."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").resize((side, side), Image.BILINEAR).save(
        buffer, format="PNG")
    return buffer.getvalue()


# The tight crops each digit is sent as: (name, side, dark ink on white).
PICTURES = (("picture 32 px, light on black", PICTURE_SIDE, False),
            ("picture 64 px, dark on white", 64, True))


def score(path, digits, laid_out, pictures):
    """`{reading: {"right", "sums", "refused", "count"}}` of one SavedModel;
    `pictures`: `{name: [encoded bytes]}` (`PICTURES`)."""
    import tensorflow as tf

    from bench.photos import read

    served = signatures(path)
    numbers = (np.arange(len(digits)) % 10).astype(np.int32)
    out = served["serving_default"](image=tf.constant(laid_out), number=tf.constant(numbers))
    right = out["digit"].numpy() == digits
    rows = {"MNIST's layout": {
        "right": int(right.sum()), "sums": int((out["sum"].numpy() == digits + numbers).sum()),
        "refused": 0, "count": len(digits)}}
    for name, crops in pictures.items():
        predicted, _, refused = read(served["predict_image"], crops, numbers)
        rows[name] = {"right": int(((predicted == digits) & ~refused).sum()), "sums": None,
                      "refused": int(refused.sum()), "count": len(digits)}
    return rows


def main(argv=None):
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    digits, images = uci_digits()
    laid_out = mnist_layout(images)
    pictures = {name: [picture(255 - image if dark else image, side) for image in images]
                for name, side, dark in PICTURES}
    for path in paths:
        for name, r in score(path, digits, laid_out, pictures).items():
            sums = f", sum {r['sums']}" if r["sums"] is not None else ""
            print(f"{path}: UCI digits, {name}: digit {r['right']}/{r['count']} "
                  f"({100 * r['right'] / r['count']:.2f}%){sums}, refused {r['refused']}",
                  flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
