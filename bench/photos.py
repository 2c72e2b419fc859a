"""Photographed handwriting: MNIST test digits on simulated paper, "photographed", per model.

    python -m bench.photos [--data PATH] [--per-condition 200] [--held-out] MODEL_DIR [...]

Renders a fixed, seeded set (`mnist_sum_keras.frontend.synthetic`: every
factor of paper, ink, light and camera drawn from a wide range) from MNIST
**test** digits (writers the model never trained on), under each of
`synthetic.CONDITIONS` (clean scan, phone photo, ruled paper, small in frame,
perspective, pencil, two-tone shadow, coloured ink, sheet on a table, dim
light, graph paper, sticky note, felt-tip marker, small jpeg, motion blur,
chalk on a board, slanted digit, tight crop), and pictures with no digit
(`synthetic.BLANKS`), and reads every picture through each SavedModel's
served `predict_image` signature (the page's and TF Serving's path). Prints,
per condition, the share of digits read right, the share refused (no digit
found) and the median top probability of right and wrong answers; then how
many pictures with no digit were answered rather than refused; and the
median time of one 12 MP (4032x3024) phone JPEG through `predict_image`,
each model timed in the same run. `--save DIR` writes a few pictures per
condition to look at, `--json FILE` every picture's answer.

The set tuned on is seed 0 with `synthetic.RANGES`; `--held-out` draws the
held-out set (seed + 1000, the wider `synthetic.HELD_OUT`): report it beside
the tuned one, never tune on it. The front end's verifier trains on MNIST
**train** digits only, with other seeds.
"""

import argparse
import io
import json
import os
import sys

import numpy as np
from PIL import Image

from bench.common import signatures
from mnist_sum_keras.frontend.synthetic import BLANKS, CONDITIONS, encode, render, render_blank


def photo_set(images, labels, per_condition=200, blanks=20, seed=0, held_out=False,
              conditions=CONDITIONS, blank_kinds=BLANKS):
    """The fixed set: `{condition: (digits, [bytes])}` and `{blank kind: [bytes]}`.

    Each condition draws its own `per_condition` MNIST test images with the
    same seed, so a condition's digits do not depend on the others. The
    held-out set takes seed + 1000 and `HELD_OUT`'s ranges.
    """
    seed = seed + 1000 if held_out else seed
    sets, blank_sets = {}, {}
    for condition in conditions:
        rng = np.random.default_rng([seed, CONDITIONS.index(condition)])
        chosen = rng.choice(len(images), per_condition, replace=False)
        sets[condition] = (np.asarray(labels)[chosen],
                           [render(rng, images[i], condition, held_out) for i in chosen])
    for kind in blank_kinds:
        rng = np.random.default_rng([seed, 100 + BLANKS.index(kind)])
        blank_sets[kind] = [render_blank(rng, kind, held_out) for _ in range(blanks)]
    return sets, blank_sets


def read(signature, pictures, numbers):
    """`(digits, top probabilities, refused)` for `pictures` read one at a time.

    A picture with no digit is answered `found` false (release 7 on); a release
    before that fails the request instead, hence one picture per request.
    """
    import tensorflow as tf

    digits, probabilities, refused = [], [], []
    for picture, number in zip(pictures, numbers):
        try:
            out = signature(image_bytes=tf.constant([picture]),
                            number=tf.constant([number], tf.int32))
        except tf.errors.InvalidArgumentError as e:
            if "blank" not in e.message:
                raise
            digits.append(-1)
            probabilities.append(0.0)
            refused.append(True)
            continue
        found = bool(out["found"][0]) if "found" in out else True
        digits.append(int(out["digit"][0]) if found else -1)
        probabilities.append(float(out["digit_probabilities"][0].numpy().max()) if found else 0.0)
        refused.append(not found)
    return np.array(digits), np.array(probabilities), np.array(refused)


def score(path, sets, blank_sets):
    """Per condition: right, refused, count, median top probability of right and wrong
    answers; per blank kind: answered, count."""
    signature = signatures(path)["predict_image"]
    rows, blank_rows = {}, {}
    for condition, (digits, pictures) in sets.items():
        numbers = np.arange(len(pictures)) % 10
        predicted, top, refused = read(signature, pictures, numbers)
        right = predicted == digits
        wrong = ~right & ~refused
        rows[condition] = {
            "count": len(pictures), "right": int(right.sum()), "refused": int(refused.sum()),
            "median_p_right": float(np.median(top[right])) if right.any() else None,
            "median_p_wrong": float(np.median(top[wrong])) if wrong.any() else None,
            "top_p": top.tolist(), "correct": right.tolist(), "refused_each": refused.tolist(),
            "answer": predicted.tolist()}
    for kind, pictures in blank_sets.items():
        _, top, refused = read(signature, pictures, np.zeros(len(pictures), int))
        blank_rows[kind] = {"count": len(pictures), "answered": int((~refused).sum()),
                            "median_p_answered": float(np.median(top[~refused]))
                            if (~refused).any() else None}
    return rows, blank_rows


def big_photo(rng, digit, size=(4032, 3024)):
    """A 12 MP phone JPEG of `digit`: a phone photo rendered, scaled up, with fresh
    sensor noise (what a camera's full resolution holds)."""
    small = Image.open(io.BytesIO(render(rng, digit, "phone photo"))).convert("RGB")
    pixels = np.asarray(small.resize(size, Image.BICUBIC), np.float64)
    return encode(pixels + rng.normal(0, 4, pixels.shape), "JPEG", 90)


def seconds_per_photo(signature, picture, repeats=7):
    """Median wall-clock of a loaded `predict_image` signature on one picture
    (after a first call)."""
    import time

    import tensorflow as tf

    args = {"image_bytes": tf.constant([picture]), "number": tf.constant([3], tf.int32)}
    signature(**args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        signature(**args)["digit"].numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def unsure_shares(rows, below):
    """`(share of wrong answers, share of right answers)` whose top probability is
    below `below`, over every condition's answered pictures."""
    top = np.concatenate([r["top_p"] for r in rows.values()])
    right = np.concatenate([r["correct"] for r in rows.values()])
    wrong = ~right & ~np.concatenate([r["refused_each"] for r in rows.values()])
    return (float((top[wrong] < below).mean()) if wrong.any() else 0.0,
            float((top[right] < below).mean()) if right.any() else 0.0)


def format_rows(path, rows, blank_rows):
    from mnist_sum_keras.predict import UNSURE_BELOW

    lines = [path, f"   {'condition':<22} {'digit right':>12} {'refused':>8}   median top p "
                   "(right / wrong)"]
    for condition, r in rows.items():
        p_right = "-" if r["median_p_right"] is None else f"{r['median_p_right']:.2f}"
        p_wrong = "-" if r["median_p_wrong"] is None else f"{r['median_p_wrong']:.2f}"
        lines.append(f"   {condition:<22} {100 * r['right'] / r['count']:>11.1f}% "
                     f"{100 * r['refused'] / r['count']:>7.1f}%   {p_right} / {p_wrong}")
    for kind, r in blank_rows.items():
        p = "" if r["median_p_answered"] is None else \
            f" (median top p {r['median_p_answered']:.2f})"
        lines.append(f"   {kind:<22} answered {r['answered']} of {r['count']}{p}")
    wrong, right = unsure_shares(rows, UNSURE_BELOW)
    lines.append(f"   marked unsure (top p < {UNSURE_BELOW}): {100 * wrong:.0f}% of wrong "
                 f"answers, {100 * right:.1f}% of right ones")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR", help="SavedModel folders")
    parser.add_argument("--data", default=None, help="MNIST npz (default: $MNIST_SUM_DATA "
                        "or the Keras download)")
    parser.add_argument("--per-condition", type=int, default=200)
    parser.add_argument("--blanks", type=int, default=20, help="pictures per blank kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held-out", action="store_true",
                        help="the held-out set: another seed, wider ranges (never tune on it)")
    parser.add_argument("--conditions", nargs="+", choices=CONDITIONS, default=CONDITIONS,
                        metavar="CONDITION", help="only these conditions")
    parser.add_argument("--save", default=None, help="also write 8 pictures per condition here")
    parser.add_argument("--json", default=None,
                        help="also write every picture's answer here (one key per model)")
    parser.add_argument("--no-timing", action="store_true", help="skip the 12 MP timing")
    args = parser.parse_args(argv)
    from mnist_sum_keras.data import load_mnist

    _, (x_test, y_test) = load_mnist(args.data)
    blank_kinds = BLANKS if args.conditions == CONDITIONS else ()
    sets, blank_sets = photo_set(x_test, y_test, args.per_condition, args.blanks, args.seed,
                                 args.held_out, args.conditions, blank_kinds)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
        for name, pictures in [(c, p) for c, (_, p) in sets.items()] + list(blank_sets.items()):
            for i, picture in enumerate(pictures[:8]):
                ext = "png" if picture.startswith(b"\x89PNG") else "jpg"
                with open(os.path.join(args.save, f"{name.replace(' ', '_')}_{i}.{ext}"),
                          "wb") as f:
                    f.write(picture)
    answers = {}
    for path in args.models:
        answers[path] = score(path, sets, blank_sets)
        print(format_rows(path, *answers[path]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(answers, f)
    if args.no_timing:
        return 0
    big = big_photo(np.random.default_rng([args.seed, 200]), x_test[0])
    print(f"A 12 MP phone JPEG ({len(big) / 1e6:.1f} MB) through predict_image, median of 7:")
    times = [seconds_per_photo(signatures(path)["predict_image"], big) for path in args.models]
    for path, seconds in zip(args.models, times):
        print(f"   {path}: {1000 * seconds:.0f} ms ({seconds / times[0]:.2f}x the first)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
