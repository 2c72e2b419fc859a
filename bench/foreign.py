"""Real handwriting that is not MNIST's, per model: UCI's optical digits, Semeion's, USPS'.

    python -m bench.foreign [--semeion semeion.data] [--usps zip.test.gz] MODEL_DIR [...]

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
With `--semeion FILE`, also the 1,593 digits of Semeion's "Handwritten Digit"
set (UCI dataset 178, CC BY 4.0; Tactile Srl and Semeion Research Center,
Brescia, 1994): about 80 people in Italy wrote each digit twice, once
carefully and once fast; each was scanned, stretched to fill a 16x16 box and
thresholded to black and white (bold digits that fill their frame).
`semeion.data` is UCI's file (one digit a line: 256 pixels 0/1, then the digit
one-hot); it is read from where you put it, never kept in git.
With `--usps FILE`, also the 2,007 test digits of the US Postal Service's
ZIP-code set (Le Cun et al. 1990; the AT&T neural network group's, as
distributed with Hastie, Tibshirani and Friedman's "The Elements of
Statistical Learning", `zip.test.gz` on its data page): digits cut from
scanned envelopes, deslanted and stretched to fill 16x16 grey pixels. The file
(one digit a line: the digit, then 256 values in -1..1, 1 the ink) is read from
where you put it, gzipped or not, never kept in git.
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


def semeion_digits(path):
    """`(digits, images)` of Semeion's file: int labels and uint8 `(n, 16, 16)`, ink 255.

    Raises:
        ValueError: the file is not in UCI's layout (256 pixels in 0..1 and a
            one-hot digit a line).
    """
    try:
        rows = np.loadtxt(path, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path!r} is not Semeion's semeion.data: {e}") from None
    one_hot = rows[:, 256:] if rows.shape[1] == 266 else None
    if (one_hot is None or rows[:, :256].min() < 0 or rows[:, :256].max() > 1
            or not np.array_equal(np.sort(one_hot, axis=1)[:, -2:], [[0, 1]] * len(rows))):
        raise ValueError(f"{path!r} is not Semeion's semeion.data: expected 266 numbers "
                         f"a line (256 pixels in 0..1, then a one-hot digit), got "
                         f"{rows.shape[1]} numbers a line")
    images = np.round(rows[:, :256].reshape(-1, 16, 16) * 255).astype(np.uint8)
    return one_hot.argmax(axis=1).astype(np.int64), images


def usps_digits(path):
    """`(digits, images)` of the ZIP-code file: int labels and uint8 `(n, 16, 16)`, ink 255.

    Raises:
        ValueError: the file is not in that layout (a digit 0..9 and 256 values
            in -1..1 a line).
    """
    try:
        rows = np.loadtxt(path, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path!r} is not the USPS zip.test file: {e}") from None
    if (rows.shape[1] != 257 or not np.isin(rows[:, 0], np.arange(10)).all()
            or np.abs(rows[:, 1:]).max() > 1):
        raise ValueError(f"{path!r} is not the USPS zip.test file: expected 257 numbers "
                         f"a line (a digit 0..9, then 256 values in -1..1), got "
                         f"{rows.shape[1]} numbers a line")
    images = np.round((rows[:, 1:].reshape(-1, 16, 16) + 1) * 127.5).astype(np.uint8)
    return rows[:, 0].astype(np.int64), images


# The sets read from a file the user has: (argparse flag, name, reader).
FILE_SETS = (("semeion", "Semeion digits", semeion_digits),
             ("usps", "USPS digits", usps_digits))


def add_file_arguments(parser):
    """Adds `--semeion FILE` and `--usps FILE` to an argparse parser."""
    parser.add_argument("--semeion", metavar="FILE",
                        help="UCI's semeion.data (Semeion's 1,593 digits), if you have it")
    parser.add_argument("--usps", metavar="FILE",
                        help="the USPS ZIP-code test file zip.test[.gz] (2,007 digits)")


def file_sets(parser, args):
    """`{name: (digits, images)}` of the files named by `add_file_arguments`' flags;
    a file that cannot be read ends the program through `parser.error`."""
    sets = {}
    for flag, name, read in FILE_SETS:
        if getattr(args, flag):
            try:
                sets[name] = read(getattr(args, flag))
            except (OSError, ValueError) as e:
                parser.error(str(e))
    return sets


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
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR", help="SavedModel folders")
    add_file_arguments(parser)
    args = parser.parse_args(argv)
    sets = {"UCI digits": uci_digits(), **file_sets(parser, args)}
    for set_name, (digits, images) in sets.items():
        laid_out = mnist_layout(images)
        pictures = {name: [picture(255 - image if dark else image, side) for image in images]
                    for name, side, dark in PICTURES}
        for path in args.models:
            for name, r in score(path, digits, laid_out, pictures).items():
                sums = f", sum {r['sums']}" if r["sums"] is not None else ""
                print(f"{path}: {set_name}, {name}: digit {r['right']}/{r['count']} "
                      f"({100 * r['right'] / r['count']:.2f}%){sums}, refused {r['refused']}",
                      flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
