"""Synthetic photographs of handwritten digits: paper, ink, light, camera, in wide ranges.

Renders an MNIST digit (uint8 28x28) written on paper and photographed, every
factor drawn at random from a range (`RANGES`): the paper's brightness, colour,
texture and kind (plain, ruled, graph, a sticky note, a board), the ink's
contrast down to where a person still reads the digit, the stroke (pen,
pencil, felt-tip marker, chalk), light falling off, soft and hard shadows, the
sheet's rotation and edge (a table beyond it), blur, motion blur, sensor noise,
JPEG quality, the frame's size and aspect, the digit's size, slant and place,
and tight crops from scanned forms. `HELD_OUT` holds wider ranges for a
held-out set. Pillow draws and encodes (the front end decodes with TF).

Used to train the front end's verifier (MNIST **train** digits) and by
`bench.photos` (MNIST **test** digits).
"""

import io
import math

import numpy as np
from PIL import Image, ImageFilter

CONDITIONS = ("clean scan", "phone photo", "ruled paper", "small in frame", "perspective",
              "pencil", "two-tone shadow", "coloured ink", "sheet on a table", "dim light",
              "graph paper", "sticky note", "felt-tip marker", "small jpeg", "motion blur",
              "chalk on a board", "slanted digit", "tight crop")
# Pictures with no digit: they must be refused, never answered.
BLANKS = ("blank paper", "blank ruled paper", "blank graph paper", "blank sticky note",
          "blank sheet on a table", "blank dim paper", "blank board", "noise", "texture")
INKS = {"blue": (35, 45, 140), "red": (175, 35, 45), "green": (30, 115, 60),
        "black": (25, 25, 30)}
PAPERS = {"white": (1.0, 1.0, 1.0), "cream": (1.0, 0.96, 0.86), "yellow": (1.0, 0.97, 0.72)}
STICKY = {"yellow": (1.0, 0.93, 0.45), "pink": (1.0, 0.72, 0.8), "green": (0.75, 1.0, 0.6),
          "blue": (0.65, 0.85, 1.0)}
TABLES = {"wood": (1.0, 0.72, 0.48), "grey": (1.0, 1.0, 1.0), "green cloth": (0.55, 0.8, 0.6)}

# The range each factor is drawn from, uniformly (the tuned set).
RANGES = {
    "height": (160, 480),             # frame height, px
    "aspect": (0.6, 1.6),             # width / height
    "paper": (120, 245),              # paper grey under full light
    "texture": (1, 9),                # paper texture, grey levels of white paper
    "contrast": (0.28, 0.95),         # 1 - ink / paper
    "digit": (0.25, 0.8),             # digit height / frame height
    "small digit": (0.09, 0.24),
    "rotation": (-15, 15),            # the sheet, degrees
    "slant": (10, 30),                # the digit alone, degrees (either way)
    "falloff": (0.45, 0.9),           # light at the far side / the near side
    "shadow": (0.5, 0.9),             # light under a soft shadow
    "hard shadow": (0.4, 0.75),
    "blur": (0.3, 2.2),               # Gaussian sigma, px
    "motion": (3, 18),                # motion blur length, px
    "noise": (2, 13),                 # sensor noise sigma, grey levels
    "quality": (40, 95),              # JPEG
    "dim paper": (30, 110),
    "dim contrast": (0.45, 0.9),
    "dim noise": (4, 15),
    "table": (5, 140),                # table grey
    "table edge": (0.04, 0.4),        # how far the sheet's edge is from the frame's
    "marker": (0.01, 0.045),          # extra stroke width (each side) / digit height
    "small height": (40, 140),
    "small quality": (5, 35),
    "crop height": (12, 120),         # tight crop, px
    "crop margin": (0, 3),            # px of paper left beside the digit
    "coarse scan": (8, 16),           # a coarse scan's height in its own pixels
}
# Wider ranges still, for the held-out set.
HELD_OUT = dict(RANGES, **{
    "height": (140, 560), "aspect": (0.55, 1.8), "paper": (110, 250), "texture": (1, 11),
    "contrast": (0.25, 0.96), "digit": (0.22, 0.85), "small digit": (0.08, 0.26),
    "rotation": (-18, 18), "slant": (8, 33), "falloff": (0.4, 0.92), "shadow": (0.45, 0.92),
    "hard shadow": (0.35, 0.8), "blur": (0.3, 2.5), "motion": (3, 20), "noise": (2, 15),
    "quality": (35, 97), "dim paper": (28, 115), "dim contrast": (0.42, 0.92),
    "dim noise": (4, 16), "table": (5, 150), "table edge": (0.03, 0.45),
    "marker": (0.008, 0.05), "small height": (36, 150), "small quality": (5, 40),
    "crop height": (12, 140), "crop margin": (0, 4), "coarse scan": (7, 18),
})


def _fast_length(n):
    """The smallest length >= n whose only prime factors are 2, 3 and 5 (fast FFTs)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _blur_axis(image, sigma, axis):
    """Gaussian blur along one axis, weights cut at 8 sigma and renormalised where
    the window leaves the array (so the edges keep their level); by FFT."""
    n = image.shape[axis]
    radius = int(min(n - 1, np.ceil(8 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    size = _fast_length(n + 2 * radius)
    spectrum = np.fft.rfft(kernel, size)

    def convolve(values, axis):
        out = np.fft.irfft(np.fft.rfft(values, size, axis=axis)
                           * np.expand_dims(spectrum, [a for a in range(values.ndim)
                                                       if a != axis]), size, axis=axis)
        return np.take(out, np.arange(radius, radius + n), axis=axis)

    norm = convolve(np.ones(n), 0)
    return convolve(image, axis) / np.expand_dims(norm, [a for a in range(image.ndim)
                                                        if a != axis])


def _gaussian(image, sigma, sigma_x=None):
    """Gaussian-blurs a float (h, w) or (h, w, c) array (`sigma_x` for the rows'
    direction when it differs)."""
    if sigma <= 0:
        return image
    return _blur_axis(_blur_axis(image, sigma, 0), sigma if sigma_x is None else sigma_x, 1)


def _blurred_noise(rng, shape, sigma, sigma_x=None):
    """Zero-mean, unit-std, low-frequency noise (Gaussian-blurred white noise)."""
    field = _gaussian(rng.normal(0, 1, shape), sigma, sigma_x)
    return (field - field.mean()) / (field.std() + 1e-9)


def _stroke_alpha(digit, height, rng, stroke="pen", slant=0.0, ranges=RANGES):
    """An MNIST digit as ink coverage 0..1, its 20 px box scaled to `height` px.

    `stroke`: "pen" (solid with a soft edge), "pencil" (thinner, grainy),
    "marker" (bold), "chalk" (grainy, broken); `slant` rotates the digit (degrees).
    """
    rows = np.flatnonzero(digit.max(axis=1) > 0)
    cols = np.flatnonzero(digit.max(axis=0) > 0)
    box = digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = height / box.shape[0]
    width = max(1, int(round(box.shape[1] * scale)))
    big = Image.fromarray(box).resize((width, int(height)), Image.BICUBIC)
    if slant:
        big = big.rotate(slant, Image.BICUBIC, expand=True)
    alpha = np.asarray(big, np.float64) / 255.0
    # A pen lays solid ink with a soft edge (MNIST's strokes are blurred).
    alpha = np.clip((alpha - 0.25) / 0.45, 0.0, 1.0)
    if stroke == "marker":
        grow = max(1, int(round(rng.uniform(*ranges["marker"]) * height)))
        padded = Image.fromarray(np.pad(np.round(alpha * 255), grow).astype(np.uint8))
        alpha = np.asarray(padded.filter(ImageFilter.MaxFilter(2 * grow + 1)), np.float64) / 255
    elif stroke == "pencil":  # Thinner, grainy graphite.
        alpha = np.clip((alpha - 0.35) / 0.5, 0.0, 1.0)
        alpha *= np.clip(0.55 + 0.45 * rng.uniform(0, 1, alpha.shape)
                         + 0.15 * _blurred_noise(rng, alpha.shape, 1.5), 0, 1)
    elif stroke == "chalk":  # Dusty, broken where the board's grain is deep.
        alpha *= np.clip(0.5 + 0.5 * rng.uniform(0, 1, alpha.shape)
                         + 0.25 * _blurred_noise(rng, alpha.shape, 1.0), 0, 1)
    return alpha


def _paper(rng, shape, grey, tint=(1.0, 1.0, 1.0), texture=4.0):
    """Paper of a grey level with a tint and low-frequency texture, float RGB.

    `texture` is in grey levels of white paper (200); like the light, it scales
    with the paper's grey (a dim photo's texture is dim too).
    """
    field = texture * _blurred_noise(rng, shape, rng.uniform(6, 20))
    field = field + rng.uniform(0.5, 1.5) * rng.normal(0, 1, shape)   # fibre grain
    field = grey * (1 + field / 200)
    return field[..., None] * np.array(tint)[None, None, :]


def _lines(rng, canvas, axis, spacing, colour, strength, thickness):
    """Anti-aliased lines across the sheet along `axis` (0: horizontal rows)."""
    size = canvas.shape[axis]
    at = np.arange(size)
    phase = rng.uniform(0, spacing)
    from_line = spacing / 2 - np.abs(((at - phase) % spacing) - spacing / 2)
    line = np.clip(thickness / 2 + 0.5 - from_line, 0, 1) * strength
    line = line[:, None] if axis == 0 else line[None, :]
    line = np.broadcast_to(line, canvas.shape[:2])[..., None]
    paper_level = canvas.mean(axis=(0, 1), keepdims=True) / 245.0
    return canvas * (1 - line) + np.asarray(colour) * paper_level * line


def _rule_lines(rng, canvas):
    """Faint blue lines across the sheet every 22-40 px, 1-2 px thick."""
    colour = [rng.uniform(150, 200), rng.uniform(180, 215), rng.uniform(225, 250)]
    return _lines(rng, canvas, 0, rng.uniform(22, 40), colour, rng.uniform(0.35, 0.75),
                  rng.uniform(1.0, 2.2))


def _grid_lines(rng, canvas):
    """Graph paper: a square grid every 8-25 px, faint blue, green, grey or orange."""
    colour = [(120, 170, 230), (120, 200, 150), (150, 150, 150), (235, 160, 110)][
        rng.integers(4)]
    spacing, strength = rng.uniform(8, 25), rng.uniform(0.3, 0.7)
    thickness = rng.uniform(0.8, 1.6)
    canvas = _lines(rng, canvas, 0, spacing, colour, strength, thickness)
    return _lines(rng, canvas, 1, spacing, colour, strength, thickness)


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


def _motion_blur(pixels, rng, length):
    """The frame averaged along a random straight path `length` px long."""
    angle = rng.uniform(0, math.pi)
    steps = max(2, int(round(length)))
    out = np.zeros_like(pixels)
    for t in np.linspace(-length / 2, length / 2, steps):
        dy, dx = int(round(t * math.sin(angle))), int(round(t * math.cos(angle)))
        out += np.roll(pixels, (dy, dx), axis=(0, 1))
    return out / steps


def encode(pixels, fmt, quality=90):
    image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": int(quality)} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _frame_transform(rng, box, amount, angle, side):
    """Pillow's perspective coefficients that show the frame `box` (left, top,
    width, height) of a `side` x `side` sheet turned by `angle` degrees about
    its centre (as `Image.rotate` turns it) and photographed at an angle: each
    corner of the frame moved by up to `amount` of its size (0: a plain crop).
    One resampling does both."""
    left, top, width, height = box
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    moved = [(left + x + rng.uniform(-amount, amount) * width,
              top + y + rng.uniform(-amount, amount) * height) for x, y in corners]
    # Each output pixel to a point of the turned sheet ...
    matrix, target = [], []
    for (x, y), (u, v) in zip(corners, moved):
        matrix.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        matrix.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        target += [u, v]
    perspective = np.append(np.linalg.solve(np.array(matrix, float), np.array(target, float)),
                            1.0).reshape(3, 3)
    # ... and that point to the sheet itself (`Image.rotate`'s inverse matrix).
    turn, centre = -math.radians(angle), side / 2
    cos, sin = math.cos(turn), math.sin(turn)
    rotation = np.array([[cos, sin, centre - cos * centre - sin * centre],
                         [-sin, cos, centre + sin * centre - cos * centre],
                         [0.0, 0.0, 1.0]])
    total = rotation @ perspective
    return tuple((total / total[2, 2]).ravel()[:8])


def _photographed(layer, size, coefficients):
    """A float layer of the sheet seen through the frame (`_frame_transform`)."""
    image = Image.fromarray(layer.astype(np.float32), "F")
    return np.asarray(image.transform(size, Image.PERSPECTIVE, coefficients, Image.BICUBIC),
                      np.float64)


def _table_mask(rng, height, width, digit_alpha, ranges):
    """1 where a table shows beyond the sheet's edges (one or two of the frame's
    sides, tilted up to 12 degrees), never over the digit; 0 on the sheet."""
    rows = np.flatnonzero(digit_alpha.max(axis=1) > 0.05)
    cols = np.flatnonzero(digit_alpha.max(axis=0) > 0.05)
    if len(rows) == 0:
        rows, cols = np.array([height // 2]), np.array([width // 2])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    mask = np.zeros((height, width))
    sides = rng.permutation(4)[:rng.integers(1, 3)]
    for side in sides:
        tilt = math.tan(math.radians(rng.uniform(-12, 12)))
        # Distance into the frame from this side, along it: across = d + tilt * (along - mid).
        if side in (0, 1):   # top, bottom: the edge runs along x
            across = ys if side == 0 else height - 1 - ys
            along, n_across, mid = xs, height, width / 2
            free = (rows[0] if side == 0 else height - 1 - rows[-1]) - 4
            span = cols
        else:                # left, right: along y
            across = xs if side == 2 else width - 1 - xs
            along, n_across, mid = ys, width, height / 2
            free = (cols[0] if side == 2 else width - 1 - cols[-1]) - 4
            span = rows
        d = rng.uniform(*ranges["table edge"]) * n_across
        # Keep the edge off the digit: its farthest point over the digit's span.
        reach = d + np.abs(tilt) * max(abs(span[0] - mid), abs(span[-1] - mid))
        if reach > free:
            d -= reach - free
        if d < 3:
            continue
        edge = d + tilt * (along - mid)
        softness = rng.uniform(0.4, 1.2)
        mask = np.maximum(mask, 1.0 / (1.0 + np.exp(np.clip((across - edge) / softness,
                                                               -50, 50))))
    return mask


def _table(rng, shape, ranges):
    """A table top: dark wood (grain along one axis), grey or green cloth, float RGB."""
    kind = list(TABLES)[rng.integers(len(TABLES))]
    grey = rng.uniform(*ranges["table"])
    if kind == "wood":   # Grain along the rows or the columns.
        across, along = rng.uniform(0.8, 2), rng.uniform(15, 40)
        if rng.uniform() < 0.5:
            across, along = along, across
        field = grey * (1 + 0.18 * _blurred_noise(rng, shape[:2], across, along))
    else:
        field = grey * (1 + 0.06 * _blurred_noise(rng, shape[:2], rng.uniform(1, 4)))
    return field[..., None] * np.array(TABLES[kind])[None, None, :]


def _draw(rng, ranges, name):
    return rng.uniform(*ranges[name])


def render(rng, digit, condition, held_out=False, with_alpha=False):
    """One picture (encoded bytes) of `digit` (MNIST uint8 28x28, or None: no digit).

    `with_alpha`: also return where the digit's ink lies in the picture, float
    (height, width) 0..1 (to label what a front end found).
    """
    ranges = HELD_OUT if held_out else RANGES
    if condition == "tight crop":
        picture, alpha = _tight_crop(rng, digit, ranges)
        return (picture, alpha) if with_alpha else picture
    height = int(_draw(rng, ranges, "small height" if condition == "small jpeg" else "height"))
    width = int(round(height * _draw(rng, ranges, "aspect")))
    texture = _draw(rng, ranges, "texture")
    contrast = _draw(rng, ranges, "contrast")
    if condition == "clean scan":
        grey, tint, texture = rng.uniform(235, 255), PAPERS["white"], 0.5
        contrast = rng.uniform(0.85, 1.0)
    elif condition == "coloured ink":
        tint = PAPERS[list(PAPERS)[rng.integers(len(PAPERS))]]
        grey = rng.uniform(175, 240)
    elif condition == "sticky note":
        tint = STICKY[list(STICKY)[rng.integers(len(STICKY))]]
        grey = rng.uniform(185, 245)
    elif condition == "dim light":
        grey, tint = _draw(rng, ranges, "dim paper"), PAPERS["white"]
        contrast = _draw(rng, ranges, "dim contrast")
    elif condition == "chalk on a board":
        tint = [(0.75, 1.0, 0.85), (1.0, 1.0, 1.0)][rng.integers(2)]
        grey = rng.uniform(25, 80)
    else:
        grey, tint = _draw(rng, ranges, "paper"), PAPERS["white"]
    # The sheet, larger than the frame so that a rotation leaves no corner empty.
    side = int(math.ceil(math.hypot(height, width))) + 4
    canvas = _paper(rng, (side, side), grey, tint, texture)
    if condition == "chalk on a board":   # Smudges of wiped chalk.
        canvas *= (1 + 0.12 * np.clip(_blurred_noise(rng, (side, side), rng.uniform(8, 25)),
                                      0, None))[..., None]
    if condition == "ruled paper":
        canvas = _rule_lines(rng, canvas)
    elif condition == "graph paper":
        canvas = _grid_lines(rng, canvas)
    alpha_layer = np.zeros((side, side))
    if digit is not None:
        fraction = _draw(rng, ranges, "small digit" if condition == "small in frame" else "digit")
        if condition == "small jpeg":
            fraction = rng.uniform(0.5, 0.8)
        stroke = {"pencil": "pencil", "felt-tip marker": "marker",
                  "chalk on a board": "chalk"}.get(condition, "pen")
        slant = 0.0
        if condition == "slanted digit":
            slant = _draw(rng, ranges, "slant") * rng.choice([-1, 1])
        alpha = _stroke_alpha(digit, max(8, int(fraction * height)), rng, stroke, slant,
                              ranges)
        if condition == "coloured ink":
            ink = np.array(INKS[list(INKS)[rng.integers(len(INKS))]], float) * rng.uniform(
                0.8, 1.15)
        elif condition == "pencil":
            ink = np.full(3, grey * (1 - rng.uniform(0.35, 0.6)))
        elif condition == "chalk on a board":
            ink = np.full(3, rng.uniform(160, 235))
        elif condition in ("felt-tip marker",):
            ink = np.array(INKS[list(INKS)[rng.integers(len(INKS))]], float) * rng.uniform(
                0.6, 1.0)
        else:
            ink = grey * (1 - contrast) * np.array(tint)
        # Anywhere in the frame with a margin (after the rotation, about the centre).
        dh, dw = alpha.shape
        room_y, room_x = max(0, (height - dh) / 2 - 6), max(0, (width - dw) / 2 - 6)
        top = int(side / 2 - dh / 2 + rng.uniform(-room_y, room_y) * 0.85)
        left = int(side / 2 - dw / 2 + rng.uniform(-room_x, room_x) * 0.85)
        top, left = max(0, top), max(0, left)
        alpha = alpha[:side - top, :side - left]
        dh, dw = alpha.shape
        region = canvas[top:top + dh, left:left + dw]
        canvas[top:top + dh, left:left + dw] = (region * (1 - alpha[..., None])
                                                + ink * alpha[..., None])
        alpha_layer[top:top + dh, left:left + dw] = alpha
    angle = 0.0 if condition in ("clean scan", "small jpeg") else _draw(rng, ranges, "rotation")
    box = ((side - width) // 2, (side - height) // 2, width, height)
    coefficients = _frame_transform(rng, box, 0.12 if condition == "perspective" else 0.0,
                                    angle, side)
    sheet = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    pixels = np.asarray(sheet.transform((width, height), Image.PERSPECTIVE, coefficients,
                                        Image.BICUBIC), np.float64)
    seen = np.zeros((height, width))
    if digit is not None and (with_alpha or condition == "sheet on a table"):
        seen = _photographed(alpha_layer, (width, height), coefficients)
    if condition == "sheet on a table":
        table = _table_mask(rng, height, width, seen, ranges)[..., None]
        pixels = pixels * (1 - table) + _table(rng, pixels.shape, ranges) * table
    if condition != "clean scan":
        low = _draw(rng, ranges, "falloff")   # Light falling off across the frame.
        pixels = pixels * (1 - (1 - low) * _ramp(rng, height, width))[..., None]
        if condition == "two-tone shadow":
            through = (height / 2 + rng.uniform(-0.1, 0.1) * height,
                       width / 2 + rng.uniform(-0.1, 0.1) * width)
            shade = _half_plane(rng, height, width, rng.uniform(1, 4), through)
            pixels = pixels * (1 - (1 - _draw(rng, ranges, "hard shadow")) * shade)[..., None]
        else:  # A soft shadow over part of the frame.
            shade = _half_plane(rng, height, width, rng.uniform(8, 30))
            pixels = pixels * (1 - (1 - _draw(rng, ranges, "shadow")) * shade)[..., None]
        blur, noise = _draw(rng, ranges, "blur"), _draw(rng, ranges, "noise")
        if condition == "dim light":
            noise = _draw(rng, ranges, "dim noise")
        if condition == "small jpeg":
            blur = min(blur, 0.8)
    else:
        blur, noise = rng.uniform(0.3, 0.6), rng.uniform(1, 2)
    pixels = _gaussian(pixels, blur)
    if condition == "motion blur":
        pixels = _motion_blur(pixels, rng, _draw(rng, ranges, "motion"))
    pixels = pixels + rng.normal(0, noise, pixels.shape)
    if condition == "clean scan":
        picture = encode(pixels, "PNG")
    else:
        quality = _draw(rng, ranges, "small quality" if condition == "small jpeg" else "quality")
        picture = encode(pixels, "JPEG", quality)
    return (picture, np.clip(seen, 0, 1)) if with_alpha else picture


def _tight_crop(rng, digit, ranges):
    """A digit cropped from a scanned form: the frame is the digit's box plus 0-3 px,
    at least one side touching; pen or bold strokes, sometimes a coarse scan
    enlarged; dark on light, or (a quarter) light on dark. Returns the picture
    and the digit's ink (`render`'s alpha)."""
    height = max(8, int(_draw(rng, ranges, "crop height")))
    stroke = "marker" if rng.uniform() < 0.3 else "pen"
    alpha = _stroke_alpha(digit, height, rng, stroke, ranges=ranges)
    high = int(ranges["crop margin"][1])
    margins = rng.integers(0, high + 1, 4)
    margins[rng.integers(4)] = 0
    alpha = np.pad(alpha, [(margins[0], margins[1]), (margins[2], margins[3])])
    if rng.uniform() < 0.3:   # A coarse scan, enlarged: blocky, blurred strokes.
        rows, cols = alpha.shape
        side = rng.uniform(*ranges["coarse scan"])
        small = (max(2, int(round(cols * side / rows))), max(2, int(round(side))))
        coarse = Image.fromarray(alpha.astype(np.float32), "F").resize(small, Image.BOX)
        alpha = np.clip(np.asarray(coarse.resize((cols, rows), Image.BILINEAR), np.float64),
                        0, 1)
    paper, ink = rng.uniform(200, 255), rng.uniform(0, 80)
    pixels = paper * (1 - alpha) + ink * alpha
    pixels = _gaussian(pixels, rng.uniform(0.0, 0.6)) + rng.normal(0, rng.uniform(0, 3),
                                                                    alpha.shape)
    if rng.uniform() < 0.25:
        pixels = 255.0 - pixels
    pixels = np.repeat(pixels[..., None], 3, axis=-1)
    if rng.uniform() < 0.5:
        return encode(pixels, "PNG"), alpha
    return encode(pixels, "JPEG", rng.uniform(70, 95)), alpha


def render_blank(rng, kind, held_out=False):
    """A picture with no digit: paper photographed as above, pure noise, or texture."""
    paper = {"blank paper": "phone photo", "blank ruled paper": "ruled paper",
             "blank graph paper": "graph paper", "blank sticky note": "sticky note",
             "blank sheet on a table": "sheet on a table", "blank dim paper": "dim light",
             "blank board": "chalk on a board"}
    if kind in paper:
        return render(rng, None, paper[kind], held_out)
    height = int(rng.integers(200, 361))
    width = int(round(height * rng.uniform(0.75, 4 / 3)))
    if kind == "noise":
        pixels = rng.uniform(0, 255, (height, width, 3))
    else:  # Texture: a photo of fabric, wood or concrete, no digit.
        pixels = 140 + 40 * _blurred_noise(rng, (height, width), rng.uniform(1.5, 5))
        pixels = pixels[..., None] + rng.normal(0, 6, (height, width, 3))
    return encode(pixels, "JPEG", rng.integers(55, 91))


