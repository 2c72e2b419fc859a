"""Photographed handwriting: MNIST test digits on simulated paper, "photographed", per model.

    python -m bench.photos [--data PATH] [--per-condition 300] [--seed 0] MODEL_DIR [...]

Renders a fixed, seeded set (numpy and Pillow) from MNIST **test** digits
(writers the model never trained on), written dark on paper and photographed
under each condition below, and reads every picture through each
SavedModel's served `predict_image` signature (the page's and TF Serving's
path). Prints, per condition, the share of digits read right, the share
refused (the blank-picture error) and the median top probability of right
and wrong answers; then how many photos of blank paper (the same light,
shadow, texture, noise, no digit) and of pure noise or texture were answered
rather than refused; and the median time of one 12 MP (4032x3024) phone JPEG
through `predict_image`, each model timed in the same run. `--save DIR` writes a
few pictures per condition to look at, `--json FILE` every picture's answer
(to choose `predict.UNSURE_BELOW` from).

Conditions (frame height 200-360 px, aspect 3:4 to 4:3, unless said):
- clean scan: white paper, even light, mild noise and blur, PNG.
- phone photo: paper grey 150-235 with low-frequency texture, light falling off
  to 55-85% across the frame, a soft shadow over part of it, ink grey 15-110,
  blur sigma 0.3-1.6 px, sensor noise sigma 3-10, rotation up to 10 degrees,
  JPEG quality 55-90, digit 35-65% of the frame height.
- ruled paper: a phone photo of notebook paper (faint blue lines every 22-40 px).
- small in frame: a phone photo with the digit 12-20% of the frame height.
- perspective: a phone photo taken at an angle (corners moved up to 12%).
- pencil: a phone photo of grey, grainy, thinner strokes (grey 70-130).
- two-tone shadow: a phone photo with a hard-edged shadow across the digit.
- coloured ink: blue, red, green or black ballpoint on white, cream or yellow paper.
"""

import argparse
import io
import json
import math
import os
import sys

import numpy as np
from PIL import Image

CONDITIONS = ("clean scan", "phone photo", "ruled paper", "small in frame", "perspective",
              "pencil", "two-tone shadow", "coloured ink")
# Pictures with no digit: they must be refused, never answered.
BLANKS = ("blank paper", "blank ruled paper", "noise", "texture")
INKS = {"blue": (35, 45, 140), "red": (175, 35, 45), "green": (30, 115, 60),
        "black": (25, 25, 30)}
PAPERS = {"white": (1.0, 1.0, 1.0), "cream": (1.0, 0.96, 0.86), "yellow": (1.0, 0.97, 0.72)}


def _blur_matrix(size, sigma):
    """(size, size) matrix whose product with a vector Gaussian-blurs it, rows summing to 1
    (so the edges keep their level)."""
    x = np.arange(size)
    weights = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    return weights / weights.sum(axis=1, keepdims=True)


def _gaussian(image, sigma):
    """Gaussian-blurs a float (h, w) or (h, w, c) array, as two matrix products."""
    if sigma <= 0:
        return image
    rows, cols = _blur_matrix(image.shape[0], sigma), _blur_matrix(image.shape[1], sigma)
    if image.ndim == 3:
        return np.stack([rows @ image[..., c] @ cols.T for c in range(image.shape[2])], -1)
    return rows @ image @ cols.T


def _blurred_noise(rng, shape, sigma):
    """Zero-mean, unit-std, low-frequency noise (Gaussian-blurred white noise)."""
    field = _gaussian(rng.normal(0, 1, shape), sigma)
    return (field - field.mean()) / (field.std() + 1e-9)


def _ink_alpha(digit, height, pencil=False, rng=None):
    """An MNIST digit as ink coverage 0..1, its 20 px box scaled to `height` px."""
    rows = np.flatnonzero(digit.max(axis=1) > 0)
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    box = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = height / box.shape[0]
    width = max(1, int(round(box.shape[1] * scale)))
    big = Image.fromarray(box).resize((width, int(height)), Image.BICUBIC)
    alpha = np.asarray(big, np.float64) / 255.0
    # A pen lays solid ink with a soft edge (MNIST's strokes are blurred).
    alpha = np.clip((alpha - 0.25) / 0.45, 0.0, 1.0)
    if pencil:  # Thinner, grainy graphite.
        alpha = np.clip((alpha - 0.35) / 0.5, 0.0, 1.0)
        alpha *= np.clip(0.55 + 0.45 * rng.uniform(0, 1, alpha.shape)
                         + 0.15 * _blurred_noise(rng, alpha.shape, 1.5), 0, 1)
    return alpha


def _paper(rng, shape, grey, tint=(1.0, 1.0, 1.0), texture=4.0):
    """Paper of a grey level with a tint and low-frequency texture, float RGB."""
    field = grey + texture * _blurred_noise(rng, shape, rng.uniform(6, 20))
    field = field + rng.uniform(0.5, 1.5) * rng.normal(0, 1, shape)   # fibre grain
    return field[..., None] * np.array(tint)[None, None, :]


def _rule_lines(rng, canvas):
    """Faint blue lines across the sheet every 22-40 px, 1-2 px thick."""
    height = canvas.shape[0]
    spacing = rng.uniform(22, 40)
    colour = np.array([rng.uniform(150, 200), rng.uniform(180, 215), rng.uniform(225, 250)])
    strength = rng.uniform(0.35, 0.75)
    thickness = rng.uniform(1.0, 2.2)
    ys = np.arange(height)[:, None]
    phase = rng.uniform(0, spacing)
    from_line = spacing / 2 - np.abs(((ys - phase) % spacing) - spacing / 2)
    line = np.clip(thickness / 2 + 0.5 - from_line, 0, 1) * strength  # anti-aliased
    line = np.broadcast_to(line, canvas.shape[:2])[..., None]
    paper_level = canvas.mean(axis=(0, 1), keepdims=True) / 245.0
    return canvas * (1 - line) + colour * paper_level * line


def _ramp(rng, height, width):
    """0..1 along a random direction across the frame."""
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    t = np.cos(angle) * xs + np.sin(angle) * ys
    return (t - t.min()) / (t.max() - t.min() + 1e-9)


def _half_plane(rng, height, width, softness, through=None):
    """1 inside a random half-plane (softened by `softness` px), 0 outside.

    `through` = (y, x): the edge passes near that point (a shadow across the digit).
    """
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    if through is None:
        through = (rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width)
    signed = np.cos(angle) * (xs - through[1]) + np.sin(angle) * (ys - through[0])
    return 1.0 / (1.0 + np.exp(-signed / max(softness, 0.5)))


def _encode(pixels, fmt, quality=90):
    image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": int(quality)} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _crop(image, rng, box, amount):
    """The frame `box` (left, top, width, height) of a sheet, photographed at an angle:
    each corner of the frame moved by up to `amount` of its size (0: a plain crop)."""
    left, top, width, height = box
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    moved = [(left + x + rng.uniform(-amount, amount) * width,
              top + y + rng.uniform(-amount, amount) * height) for x, y in corners]
    # Pillow's coefficients map each output pixel to a point of the sheet.
    matrix, target = [], []
    for (x, y), (u, v) in zip(corners, moved):
        matrix.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        matrix.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        target += [u, v]
    coefficients = np.linalg.solve(np.array(matrix, float), np.array(target, float))
    return image.transform((width, height), Image.PERSPECTIVE, tuple(coefficients),
                           Image.BICUBIC)


def render(rng, digit, condition):
    """One picture (encoded bytes) of `digit` (MNIST uint8 28x28, or None: no digit)."""
    height = int(rng.integers(200, 361))
    width = int(round(height * rng.uniform(0.75, 4 / 3)))
    if condition == "clean scan":
        grey, tint, texture = rng.uniform(235, 255), (1.0, 1.0, 1.0), 0.5
    elif condition == "coloured ink":
        tint = PAPERS[rng.choice(list(PAPERS))]
        grey, texture = rng.uniform(175, 240), rng.uniform(2, 6)
    else:
        grey, tint, texture = rng.uniform(150, 235), (1.0, 1.0, 1.0), rng.uniform(2, 6)
    # The sheet, larger than the frame so that a rotation leaves no corner empty.
    side = int(math.ceil(math.hypot(height, width))) + 4
    canvas = _paper(rng, (side, side), grey, tint, texture)
    if condition in ("ruled paper", "blank ruled paper"):
        canvas = _rule_lines(rng, canvas)
    if digit is not None:
        fraction = rng.uniform(0.12, 0.20) if condition == "small in frame" else \
            rng.uniform(0.35, 0.65)
        alpha = _ink_alpha(digit, max(8, int(fraction * height)), condition == "pencil", rng)
        if condition == "coloured ink":
            ink = np.array(INKS[rng.choice(list(INKS))], float) * rng.uniform(0.8, 1.15)
        elif condition == "pencil":
            ink = np.full(3, rng.uniform(70, 130))
        elif condition == "clean scan":
            ink = np.full(3, rng.uniform(0, 40))
        else:
            ink = np.full(3, rng.uniform(15, 110))
        # Anywhere in the frame with a margin (after the rotation, about the centre).
        dh, dw = alpha.shape
        room_y, room_x = max(0, (height - dh) / 2 - 6), max(0, (width - dw) / 2 - 6)
        top = int(side / 2 - dh / 2 + rng.uniform(-room_y, room_y) * 0.85)
        left = int(side / 2 - dw / 2 + rng.uniform(-room_x, room_x) * 0.85)
        region = canvas[top:top + dh, left:left + dw]
        canvas[top:top + dh, left:left + dw] = (region * (1 - alpha[..., None])
                                                + ink * alpha[..., None])
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    if condition != "clean scan":
        image = image.rotate(rng.uniform(-10, 10), Image.BICUBIC)
    box = ((side - width) // 2, (side - height) // 2, width, height)
    image = _crop(image, rng, box, 0.12 if condition == "perspective" else 0.0)
    pixels = np.asarray(image, np.float64)
    if condition != "clean scan":
        low = rng.uniform(0.55, 0.85)   # Light falling off across the frame.
        pixels = pixels * (1 - (1 - low) * _ramp(rng, height, width))[..., None]
        if condition == "two-tone shadow":
            through = (height / 2 + rng.uniform(-0.1, 0.1) * height,
                       width / 2 + rng.uniform(-0.1, 0.1) * width)
            shade = _half_plane(rng, height, width, rng.uniform(1, 4), through)
            pixels = pixels * (1 - (1 - rng.uniform(0.45, 0.7)) * shade)[..., None]
        else:  # A soft shadow over part of the frame.
            shade = _half_plane(rng, height, width, rng.uniform(8, 30))
            pixels = pixels * (1 - (1 - rng.uniform(0.6, 0.85)) * shade)[..., None]
        blur, noise = rng.uniform(0.3, 1.6), rng.uniform(3, 10)
    else:
        blur, noise = rng.uniform(0.3, 0.6), rng.uniform(1, 2)
    pixels = _gaussian(pixels, blur) + rng.normal(0, noise, pixels.shape)
    if condition == "clean scan":
        return _encode(pixels, "PNG")
    return _encode(pixels, "JPEG", rng.integers(55, 91))


def render_blank(rng, kind):
    """A picture with no digit: paper photographed as above, pure noise, or texture."""
    if kind == "blank paper":
        return render(rng, None, "phone photo")
    if kind == "blank ruled paper":
        return render(rng, None, "blank ruled paper")
    height = int(rng.integers(200, 361))
    width = int(round(height * rng.uniform(0.75, 4 / 3)))
    if kind == "noise":
        pixels = rng.uniform(0, 255, (height, width, 3))
    else:  # Texture: a photo of fabric, wood or concrete, no digit.
        pixels = 140 + 40 * _blurred_noise(rng, (height, width), rng.uniform(1.5, 5))
        pixels = pixels[..., None] + rng.normal(0, 6, (height, width, 3))
    return _encode(pixels, "JPEG", rng.integers(55, 91))


def photo_set(images, labels, per_condition=300, blanks=40, seed=0):
    """The fixed set: `{condition: (digits, [bytes])}` and `{blank kind: [bytes]}`.

    Each condition draws its own `per_condition` MNIST test images with the
    same seed, so a condition's digits do not depend on the others.
    """
    sets, blank_sets = {}, {}
    for k, condition in enumerate(CONDITIONS):
        rng = np.random.default_rng([seed, k])
        chosen = rng.choice(len(images), per_condition, replace=False)
        sets[condition] = (np.asarray(labels)[chosen],
                           [render(rng, images[i], condition) for i in chosen])
    for k, kind in enumerate(BLANKS):
        rng = np.random.default_rng([seed, 100 + k])
        blank_sets[kind] = [render_blank(rng, kind) for _ in range(blanks)]
    return sets, blank_sets


def read(signature, pictures, numbers):
    """`(digits, top probabilities, refused)` for `pictures` read one at a time.

    One at a time because a refused picture fails its whole request.
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
        digits.append(int(out["digit"][0]))
        probabilities.append(float(out["digit_probabilities"][0].numpy().max()))
        refused.append(False)
    return np.array(digits), np.array(probabilities), np.array(refused)


def score(path, sets, blank_sets):
    """Per condition: right, refused, count, median top probability of right and wrong
    answers; per blank kind: answered, count."""
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["predict_image"]
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
            "top_p": top.tolist(), "correct": right.tolist(), "refused_each": refused.tolist()}
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
    return _encode(pixels + rng.normal(0, 4, pixels.shape), "JPEG", 90)


def seconds_per_photo(path, picture, repeats=7):
    """Median wall-clock of `predict_image` on one picture (after a first call)."""
    import time

    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["predict_image"]
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

    lines = [path, f"   {'condition':<18} {'digit right':>12} {'refused':>8}   median top p "
                   "(right / wrong)"]
    for condition, r in rows.items():
        p_right = "-" if r["median_p_right"] is None else f"{r['median_p_right']:.2f}"
        p_wrong = "-" if r["median_p_wrong"] is None else f"{r['median_p_wrong']:.2f}"
        lines.append(f"   {condition:<18} {100 * r['right'] / r['count']:>11.1f}% "
                     f"{100 * r['refused'] / r['count']:>7.1f}%   {p_right} / {p_wrong}")
    for kind, r in blank_rows.items():
        p = "" if r["median_p_answered"] is None else \
            f" (median top p {r['median_p_answered']:.2f})"
        lines.append(f"   {kind:<18} answered {r['answered']} of {r['count']}{p}")
    wrong, right = unsure_shares(rows, UNSURE_BELOW)
    lines.append(f"   marked unsure (top p < {UNSURE_BELOW}): {100 * wrong:.0f}% of wrong "
                 f"answers, {100 * right:.1f}% of right ones")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR", help="SavedModel folders")
    parser.add_argument("--data", default=None, help="MNIST npz (default: $MNIST_SUM_DATA "
                        "or the Keras download)")
    parser.add_argument("--per-condition", type=int, default=300)
    parser.add_argument("--blanks", type=int, default=40, help="pictures per blank kind")
    parser.add_argument("--seed", type=int, default=0,
                        help="0 is the benchmark's set; another seed, an independent one")
    parser.add_argument("--save", default=None, help="also write 8 pictures per condition here")
    parser.add_argument("--json", default=None,
                        help="also write every picture's answer here (one key per model)")
    args = parser.parse_args(argv)
    from mnist_sum_keras.data import load_mnist

    _, (x_test, y_test) = load_mnist(args.data)
    sets, blank_sets = photo_set(x_test, y_test, args.per_condition, args.blanks, args.seed)
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
    big = big_photo(np.random.default_rng([args.seed, 200]), x_test[0])
    print(f"A 12 MP phone JPEG ({len(big) / 1e6:.1f} MB) through predict_image, median of 7:")
    times = [seconds_per_photo(path, big) for path in args.models]
    for path, seconds in zip(args.models, times):
        print(f"   {path}: {1000 * seconds:.0f} ms ({seconds / times[0]:.2f}x the first)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
