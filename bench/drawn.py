"""Digits that are not MNIST's: pen strokes, typed digits and photo-like ones, per model.

    python -m bench.drawn MODEL_DIR [MODEL_DIR ...]

Renders a fixed, seeded set with Pillow: 300 digits drawn as jittered pen
strokes (polylines of each digit's shape, slanted, at random sizes, places and
pen widths, dark on light and light on dark, like a hand on the page's
canvas), and 180 digits typed in Pillow's default font (3 sizes, 3 ink/paper
pairs, rotated up to 12 degrees, off-centre), half of them made photo-like
(blurred, unevenly lit, noisy, JPEG). Each SavedModel reads them through its
served `predict_image` signature (the page's and TF Serving's path), and the
counts of right digits and sums are printed, so that two releases can be
compared on the photo door.
"""

import io
import math
import sys

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from bench.common import signatures


def _arc(cx, cy, rx, ry, a0, a1, n=16):
    return [(cx + rx * math.cos(math.radians(a0 + (a1 - a0) * i / n)),
             cy + ry * math.sin(math.radians(a0 + (a1 - a0) * i / n))) for i in range(n + 1)]


# Each digit's pen strokes in a unit square, y down.
STROKES = {
    0: [_arc(.5, .5, .28, .42, 0, 360)],
    1: [[(.38, .25), (.55, .08), (.55, .92)]],
    2: [_arc(.5, .32, .27, .24, 200, 380) + [(.2, .92), (.82, .92)]],
    3: [_arc(.48, .3, .25, .21, 210, 450), _arc(.48, .7, .28, .23, 270, 510)],
    4: [[(.62, .92), (.62, .08), (.18, .65), (.85, .65)]],
    5: [[(.78, .08), (.3, .08), (.26, .45)] + _arc(.5, .65, .28, .27, 230, 500)],
    6: [[(.7, .08), (.4, .35), (.25, .65)] + _arc(.5, .68, .26, .24, 180, 540)],
    7: [[(.18, .1), (.82, .1), (.42, .92)]],
    8: [_arc(.5, .28, .22, .2, 0, 360), _arc(.5, .7, .27, .23, 0, 360)],
    9: [_arc(.5, .32, .25, .23, 0, 360), [(.75, .32), (.68, .92)]],
}


def _png(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def stroked(rng, per_digit=30, size=200):
    """`[(digit, png bytes)]`: jittered, slanted pen strokes."""
    cases = []
    for digit in range(10):
        for k in range(per_digit):
            ink, paper = (0, 255) if k % 2 else (255, 0)
            width = int(rng.integers(8, 22))
            image = Image.new("L", (size, size), paper)
            draw = ImageDraw.Draw(image)
            scale = rng.uniform(0.55, 0.8) * size
            left, top = rng.uniform(0, size - scale, 2)
            slant = rng.uniform(-0.4, 0.4)
            for stroke in STROKES[digit]:
                points = [((x + slant * (0.5 - y)) * scale * rng.uniform(0.97, 1.03) + left
                           + rng.normal(0, 4), y * scale + top + rng.normal(0, 4))
                          for x, y in stroke]
                draw.line(points, fill=ink, width=width, joint="curve")
            cases.append((digit, _png(image)))
    return cases


def typed(rng, size=160):
    """`[(digit, bytes, photo-like?)]`: Pillow's default font, half of them photo-like."""
    cases = []
    for digit in range(10):
        for font_size in (60, 90, 120):
            for ink, paper in ((0, 255), (255, 0), (40, 210)):
                for photo in (False, True):
                    angle = float(rng.uniform(-12, 12))
                    dx, dy = (int(v) for v in rng.integers(-15, 16, 2))
                    image = Image.new("L", (size, size), paper)
                    ImageDraw.Draw(image).text((40 + dx, 20 + dy), str(digit), fill=ink,
                                               font=ImageFont.load_default(size=font_size))
                    image = image.rotate(angle, fillcolor=paper)
                    if photo:  # Blur, light falling off to one side, sensor noise, JPEG.
                        image = image.filter(ImageFilter.GaussianBlur(1.5))
                        pixels = (np.asarray(image, float) * np.linspace(0.75, 1.0, size)
                                  + rng.normal(0, 8, (size, size)))
                        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
                    cases.append((digit, _png(image, "JPEG" if photo else "PNG"), photo))
    return cases


def score(path, sets):
    """Right digits and sums per set, through the SavedModel's `predict_image`."""
    signature = signatures(path)["predict_image"]
    rows = {}
    for name, (digits, images) in sets.items():
        numbers = np.arange(len(images), dtype=np.int32) % 10
        out = signature(image_bytes=tf.constant(images), number=tf.constant(numbers))
        rows[name] = (int((out["digit"].numpy() == digits).sum()),
                      int((out["sum"].numpy() == digits + numbers).sum()), len(images))
    return rows


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL_DIR", help="SavedModel folders")
    paths = parser.parse_args(argv).models
    rng = np.random.default_rng(0)
    strokes, printed = stroked(rng), typed(rng)
    sets = {"pen strokes": strokes,
            "typed": [(d, b) for d, b, photo in printed if not photo],
            "typed, photo-like": [(d, b) for d, b, photo in printed if photo]}
    sets = {name: (np.array([d for d, _ in cases]), [b for _, b in cases])
            for name, cases in sets.items()}
    for path in paths:
        rows = score(path, sets)
        print(path + ": " + "; ".join(f"{name}: digit {d}/{n}, sum {s}/{n}"
                                     for name, (d, s, n) in rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
