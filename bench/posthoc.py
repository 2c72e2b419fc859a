"""What screened runs give with no more training, on the validation split only.

    python -m bench.posthoc --data PATH [--work-dir bench/work/screen] [RUN ...]
                            [--zooms 1.0 1.05]

For each run folder of `bench.screen` (`<variant>-s<seed>`, the checkpoint
`train` restored: its last `best-*.keras`), reads the validation images:
- as they are, and zoomed by each fixed `--zooms` factor about the centre
  (bilinear, as the training distortion resamples; rounded to the 0..255
  integers of the input contract): a test-time zoom, as in Touvron et al.
  2019, "Fixing the train-test resolution discrepancy". For each zoom, the
  images it fixes and breaks against no zoom, pooled over the runs, with an
  exact two-sided sign test (the runs share the images, so that p is a rough
  guide, not a proof);
- as a committee: the digit probabilities of each pair of runs with
  different seeds averaged (what a two-member ensemble would read).
With `--foreign`, the same for UCI's handwritten digits laid out as MNIST's
(`bench.foreign`): handwriting that is not MNIST's; with `--semeion FILE` and
`--usps FILE`, for Semeion's and USPS' digits too (`bench.foreign`'s flags).
The test split is never read. Figures are digit errors and the digit head's negative log-likelihood
(the digit head reads only the image, so the number does not matter).
"""

import argparse
import glob
import itertools
import json
import math
import os
import sys

import numpy as np

VALIDATION_SIZE_KEY = "validation_size"


def zoom_images(images, scale):
    """uint8 `(n, 28, 28)` images magnified `scale` times about their centre.

    Bilinear, black outside, rounded back to integers; `scale=1` is exact.
    """
    import tensorflow as tf

    from mnist_sum_keras.augment import bilinear_sample, centre_zoom_coordinates

    images = np.asarray(images)
    if scale == 1:
        return images.copy()
    n, height, width = images.shape
    rows, cols = (np.broadcast_to(c.numpy(), (n, height, width))
                  for c in centre_zoom_coordinates(height, width, scale))
    out = bilinear_sample(tf.constant(images, tf.float32), rows, cols).numpy()
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def figures(probabilities, digits):
    """`{"wrong", "accuracy", "nll"}` of digit probabilities against the labels."""
    probabilities = np.asarray(probabilities, np.float64)
    picked = probabilities[np.arange(len(digits)), digits]
    wrong = int((probabilities.argmax(1) != digits).sum())
    return {"wrong": wrong, "accuracy": 1 - wrong / len(digits),
            "nll": float(-np.log(np.clip(picked, 1e-12, 1)).mean())}


def sign_test(fixed, broken):
    """Exact two-sided sign-test p of `fixed` against `broken` discordant images."""
    n = fixed + broken
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(fixed, broken) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def run_seed(run_dir):
    """The seed and validation size a screen run trained with (its `run.json`)."""
    with open(os.path.join(run_dir, "run.json")) as f:
        config = json.load(f)
    return config["seed"], config[VALIDATION_SIZE_KEY]


def restored_checkpoint(run_dir):
    """The checkpoint `train` restores: the run's last `best-*.keras`."""
    found = sorted(glob.glob(os.path.join(run_dir, "best-*.keras")))
    if not found:
        raise FileNotFoundError(f"no best-*.keras checkpoint in run folder {run_dir!r}")
    return found[-1]


def digit_probabilities(model, images):
    """The model's digit probabilities of uint8 images (number 0: the digit head
    reads only the image)."""
    out = model.predict({"image": images, "number": np.zeros(len(images), np.int32)},
                        batch_size=1000, verbose=0)
    return np.asarray(out["digit"], np.float64)


def main(argv=None):
    from bench.foreign import add_file_arguments, file_sets, mnist_layout

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*",
                        help="run folders' names in --work-dir (default: all of them)")
    parser.add_argument("--data", default=None, help="local MNIST npz")
    parser.add_argument("--work-dir", default=os.path.join("bench", "work", "screen"))
    parser.add_argument("--zooms", nargs="+", type=float, default=[1.05])
    parser.add_argument("--foreign", action="store_true",
                        help="also UCI's handwritten digits (bench.foreign; needs scikit-learn)")
    add_file_arguments(parser)
    args = parser.parse_args(argv)
    if any(not 0.5 <= z <= 2 for z in args.zooms):
        parser.error(f"--zooms must lie in [0.5, 2]. Received: {args.zooms}")
    names = args.runs or sorted(
        os.path.basename(os.path.dirname(p))
        for p in glob.glob(os.path.join(args.work_dir, "*", "run.json")))
    if not names:
        parser.error(f"no run folders in --work-dir {args.work_dir!r}")
    dirs = {name: os.path.join(args.work_dir, name) for name in names}
    seeds = {name: run_seed(d) for name, d in dirs.items()}
    sizes = {size for _, size in seeds.values()}
    if len(sizes) != 1 or 0 in sizes:
        parser.error(f"the runs must share one non-empty validation split. Received "
                     f"validation sizes {sorted(sizes)}")

    import dataclasses

    import keras

    from mnist_sum_keras.config import Config
    from mnist_sum_keras.train import load_datasets

    config = dataclasses.replace(Config(), data_path=args.data, validation_size=sizes.pop())
    sets = {"validation images": load_datasets(config)["validation"]}
    foreign = file_sets(parser, args)
    if args.foreign:
        from bench.foreign import uci_digits

        foreign = {"UCI digits": uci_digits(), **foreign}
    for name, (digits, images) in foreign.items():
        sets[f"{name} (MNIST's layout, bench.foreign)"] = (mnist_layout(images), digits)
    zooms = [1.0] + [z for z in args.zooms if z != 1.0]
    models = {name: keras.models.load_model(restored_checkpoint(dirs[name]))
              for name in names}
    for title, (images, digits) in sets.items():
        probabilities = {name: {z: digit_probabilities(model, zoom_images(images, z))
                                for z in zooms} for name, model in models.items()}
        _report(title, digits, probabilities, zooms, seeds)
    return 0


def _report(title, digits, probabilities, zooms, seeds):
    """Prints one set's figures: per run and zoom, zoom against none, committees."""
    names = list(probabilities)
    print(f"\n{len(digits)} {title}; wrong / nll per run, at each zoom")
    print(f"{'run':<28}" + "".join(f"{'zoom ' + format(z, 'g'):>18}" for z in zooms))
    for name in names:
        row = [figures(probabilities[name][z], digits) for z in zooms]
        print(f"{name:<28}" + "".join(f"{r['wrong']:>10} / {r['nll']:.4f}" for r in row))

    for z in zooms[1:]:
        right0 = [probabilities[n][1.0].argmax(1) == digits for n in names]
        right1 = [probabilities[n][z].argmax(1) == digits for n in names]
        fixed = sum(int((~a & b).sum()) for a, b in zip(right0, right1))
        broken = sum(int((a & ~b).sum()) for a, b in zip(right0, right1))
        print(f"zoom {z:g} against none, over {len(names)} runs: fixes {fixed}, breaks "
              f"{broken} (sign test p {sign_test(fixed, broken):.3g})")

    pairs = [(a, b) for a, b in itertools.combinations(names, 2)
             if seeds[a][0] != seeds[b][0]]
    if pairs:
        print("committees of two runs with different seeds (digit probabilities averaged):")
    for z in zooms:
        rows = []
        for a, b in pairs:
            r = figures((probabilities[a][z] + probabilities[b][z]) / 2, digits)
            rows.append(r)
            print(f"  zoom {z:g}  {a} + {b}: {r['wrong']} wrong "
                  f"({100 * r['accuracy']:.2f}%), nll {r['nll']:.4f}")
        if rows:
            single = [figures(probabilities[n][z], digits)["accuracy"] for n in names]
            print(f"  zoom {z:g}  mean of {len(rows)} pairs "
                  f"{100 * np.mean([r['accuracy'] for r in rows]):.3f}%, "
                  f"of {len(names)} single runs {100 * np.mean(single):.3f}%")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
