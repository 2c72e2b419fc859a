"""The front end's stages: gray levels -> ink on flat paper -> the digit -> MNIST's box."""

import tensorflow as tf

from mnist_sum_keras import contract
from mnist_sum_keras.config import IMAGE_SHAPE
from mnist_sum_keras.frontend import decode, kernels, verifier

# MNIST fits each digit's longer side into 20 px and centres its mass in 28x28.
DIGIT_BOX = 20
# Pictures are read at most this many pixels on their longer side: a phone's
# 12 MP photo is shrunk (averaging, which also cuts its sensor noise) before
# any other work. Smaller pictures are read as they are.
WORK_SIZE = 384
# ... and a picture larger than this on its longer side is shrunk before it
# becomes gray levels (`working_gray`: memory).
SHRINK_FIRST = 1024
# The skew of a picture's detail that tells dark marks on light ground from
# light on dark (`dark_ink_on_light_paper`).
CLEAR_SKEW = 1.0
# When the skew is unclear: a border whose median absolute deviation is at most
# this many grey levels is clean (a drawing, a scan), not a photo's; a photo's
# ground is dark (light marks on it) when most of the picture lies in this
# lowest share of its range, and its lightest is this many times as light.
CLEAN_BORDER = 2.0
DARK_GROUND = 0.2
LIGHT_MARKS = 2.5
# The paper is estimated with a window a third of the picture's longer side,
# and never narrower than this (in a small picture a stroke is a large share).
MIN_PAPER_WINDOW = 15
# Paper whose border varies by at most this share of its level (median
# absolute deviation) is a scan's: even, its level the border's.
EVEN_PAPER = 0.02
# The paper's texture is followed over a window this wide (px of the working
# picture): wider than a pen's stroke, narrower than the paper's blotches.
TEXTURE_WINDOW = 21
TEXTURE_STEP = 3
# Ink is what stands out from the paper by more than this many robust standard
# deviations of the paper's own variation (noise, texture, JPEG), measured at a
# pixel's scale and at a stroke's (1/STROKE_SCALE of the picture's longer side) ...
NOISE_SIGMAS = 5.0
STROKE_SCALE = 48
# A table beyond the sheet's edge: looked for within this share of the frame
# from each side, as a step from dark to light of at least this share of the
# light, lined up along at least this share of the side, with what lies
# beyond darker than this share of the sheet just inside.
TABLE_REACH = 0.45
TABLE_STEP = 0.15
TABLE_COVERAGE = 0.5
TABLE_DARKER = 0.7
# ... and by more than this fraction of the strongest ink.
INK_FLOOR = 0.1
# Marks are grouped into objects on a grid of this many cells a side (nearby
# strokes of one digit join); a ruled line is a thin mark at least this long and this share
# of the width.
COMPONENT_GRID = 64
LINE_LENGTH = (0.6, 64)  # share of the width, and pixels
LINE_SLOPES = (-0.18, -0.09, 0.0, 0.09, 0.18)
# A detached part of the digit is at least this share as dark as its main part
# (what is left of a shadow's edge or a stain beside a digit is fainter).
MIN_PART_DARKNESS = 0.5
# Marks of the digit fainter than this share of its strokes' level are kept
# only within 2 px of stronger ones (a stroke's soft edge, a pencil's grain).
FAINT_INK = 0.35
# The front end draws this many candidates for the digit and the verifier
# (`verifier.py`) picks the one that looks most like a digit.
CANDIDATES = 3
# What describes a candidate besides its picture (the verifier's second input).
FEATURES = ("share", "extent", "height", "width", "aspect", "fill", "solid", "darkness",
            "contact", "sides touched", "off-centre")
# A candidate is the digit when the verifier gives it at least this probability.
# Chosen on tuning pictures (never the held-out set): of 900 with no digit (100
# of each blank kind) 11 score above 0.1 and 2 above 0.2, at most 4 of one kind;
# of UCI's 1,797 digits as 64 px crops 39 score under 0.3, 14 under 0.15, 11
# under 0.1. 0.15 keeps every blank kind well under 1 in 20 answered.
DIGIT_LIKELY = 0.15


def working_gray(pixels):
    """uint8 (h, w, c) -> float32 gray levels, shrunk to at most `WORK_SIZE` a side.

    A picture more than `SHRINK_FIRST` pixels on its longer side is averaged
    down in its own channels first, reading its uint8 pixels directly: a
    4096x4096 RGBA PNG never becomes the ~270 MB of float32 that its gray
    levels at full size would take (the same gray levels for an opaque picture).
    """
    size = tf.shape(pixels)[:2]
    longer = tf.reduce_max(size)
    scaled = tf.maximum(1, tf.cast(tf.round(
        tf.cast(size, tf.float32) * WORK_SIZE / tf.cast(longer, tf.float32)), tf.int32))

    def shrunk_first():
        return decode.gray_on_white(tf.raw_ops.ResizeArea(images=pixels[None], size=scaled)[0])

    def gray_then_shrunk():
        gray = decode.gray_on_white(pixels)
        return tf.cond(longer > WORK_SIZE, lambda: kernels.resize(gray, scaled), lambda: gray)

    return tf.cond(longer > SHRINK_FIRST, shrunk_first, gray_then_shrunk)


def dark_ink_on_light_paper(gray):
    """True when the marks are darker than the ground (pen on paper), False when
    lighter (chalk, a drawing on a black canvas, MNIST itself).

    The skew of the picture's detail (the picture minus a blur of it) decides
    when it is clear: sparse marks make one tail long, while light falling
    off, shadows, texture and noise are about as much lighter as darker. When
    it is not (bold or grainy marks filling the frame, no marks at all), a
    clean picture's border is its ground (dark when its median is in the
    lower half of the picture's range, as in MNIST); a noisy one's ground is
    dark (chalk on a board) when the skew leans to light marks and the median
    of its 5x5 means (its range, not its noise's) lies in the lowest
    `DARK_GROUND` of their range and their maximum is `LIGHT_MARKS` times it;
    otherwise it is pen on paper.
    """
    size = tf.shape(gray)
    window = tf.maximum(3, tf.reduce_max(size) // 8)
    small = tf.maximum(1, size // window)
    detail = gray - kernels.resize(kernels.resize(gray, small), size, "bilinear")
    detail -= tf.reduce_mean(detail)
    skew = tf.reduce_mean(detail ** 3) / tf.maximum(tf.reduce_mean(detail ** 2), 1e-6) ** 1.5
    steady = kernels.pool(gray, 5, "mean")  # The range of the picture, not of its noise.
    low, high = tf.reduce_min(steady), tf.reduce_max(steady)
    # A clean picture's border is its ground (MNIST, a drawing on black) ...
    border = kernels.border(gray)
    ground = kernels.median(border)
    clean = kernels.median(tf.abs(border - ground)) <= CLEAN_BORDER
    light_marks = clean & (ground < 0.5 * (low + high))
    # ... and a noisy one's is most of it, far down its range and a fraction
    # of its lightest (chalk on a board; a shadow is never that dark).
    middle = kernels.median(steady)
    light_marks |= (~clean & (skew > 0.0) & (middle < low + DARK_GROUND * (high - low))
                    & (high >= LIGHT_MARKS * middle))
    return tf.cond(tf.abs(skew) >= CLEAR_SKEW, lambda: skew < 0.0,
                   lambda: tf.logical_not(light_marks))


def paper_level(gray):
    """The paper's brightness at every point of a dark-ink picture.

    A grey-level closing (dilation then erosion) with a window a third of the
    picture's longer side (at least `MIN_PAPER_WINDOW` pixels), wider than any
    stroke, removes the strokes and keeps what is wider: light falling off
    and the edges of shadows (each exactly, however sharp: a closing keeps
    any change that runs one way through its window; where the two cross,
    approximately) and large stains. The picture is extended past its edges
    by a point reflection (`kernels.point_reflected`).
    """
    size = tf.shape(gray)
    window = tf.maximum(tf.reduce_max(size) // 6 * 2 + 1, MIN_PAPER_WINDOW)
    pad = tf.minimum(window // 2, size - 1)
    extended = kernels.point_reflected(gray, pad)

    def closing(x, window):
        return kernels.pool(kernels.pool(x, window, "max"), window, "min")

    # On a grid half as fine (its 2x2 means: the maximum of the picture itself
    # would ride on its noise), then back by bilinear interpolation.
    extended_size = tf.shape(extended)
    half_window = tf.maximum(window // 4 * 2 + 1, 3)
    closed = kernels.resize(closing(kernels.resize(extended, tf.maximum(1, extended_size // 2)),
                                    half_window), extended_size, "bilinear")
    closed = closed[pad[0]:pad[0] + size[0], pad[1]:pad[1] + size[1]]
    # A scan's paper is even, and its border mostly paper: there, a dark band
    # along the frame's edge is ink touching it (the bar of a 2 in a tight
    # crop), which the reflection past the edge would take for shade.
    even, level = even_paper(gray)
    closed = tf.where(even, tf.maximum(closed, 0.9 * level), closed)
    return tf.maximum(closed, 1.0)


def even_paper(gray):
    """Whether the picture's border is a scan's even paper (its median absolute
    deviation at most `EVEN_PAPER` of its median), and that median."""
    border = kernels.border(gray)
    level = kernels.median(border)
    return kernels.median(tf.abs(border - level)) <= EVEN_PAPER * level, level


def paper_statistics(ink, sheet=None):
    """The paper's level and noise in an ink map: `(level, spread)`, float scalars.

    The median and the robust standard deviation (1.4826 x the median absolute
    deviation) of all the picture's values, or of its border's alone, whichever
    is lower: ink is a minority of the pixels in a photo, but may be most of a
    tight crop, whose border is still mostly paper. `sheet` (bool (h, w)):
    only these pixels count (not a table beyond the sheet).
    """
    def statistics(values, keep):
        values = tf.cond(tf.reduce_all(keep), lambda: values,
                         lambda: tf.boolean_mask(values, keep))
        values = tf.cond(tf.size(values) > 0, lambda: values, lambda: tf.zeros([1]))
        level = kernels.signed_quantile(values, 0.5)
        return level, 1.4826 * kernels.signed_quantile(tf.abs(values - level), 0.5)

    if sheet is None:
        sheet = tf.ones_like(ink, tf.bool)
    level, spread = statistics(tf.reshape(ink, [-1]), tf.reshape(sheet, [-1]))
    border_level, border_spread = statistics(kernels.border(ink), kernels.border(sheet))
    return tf.minimum(level, border_level), tf.minimum(spread, border_spread)


def flat_ink(pixels):
    """Flat-fielded ink: about 0 where the paper is, up to 1 for black ink, float
    (h, w); the paper's noise keeps its sign (values below 0 are paper lighter
    than its surroundings).

    Light ink on dark ground (a drawing on a black canvas, MNIST itself) is
    inverted first, so that everything after sees pen on paper. Darkness is
    relative to the paper: first to its upper envelope (`paper_level`: light
    falling off, shadows), then to the local mean of the paper's own pixels
    over `TEXTURE_WINDOW` (the paper's texture and blotches, which an envelope
    rides over), twice, each time leaving out what stands out as ink.
    """
    gray = working_gray(pixels)
    gray = tf.where(dark_ink_on_light_paper(gray), gray, 255.0 - gray)
    # A scan's even border holds no table (a tight crop's stroke along an edge).
    table = tf.logical_and(beyond_the_sheet(gray), tf.logical_not(even_paper(gray)[0]))
    ratio = gray / paper_level(gray)
    ink = 1.0 - ratio
    sheet = tf.cast(tf.logical_not(table), tf.float32)
    size = tf.shape(ink)
    for generous in (True, False):
        # Paper is what is not ink on a 3x3 mean (a thin stroke) nor on a 5x5 or
        # 9x9 one (a dim photo's noise, or chalk's grain, splits a stroke's pixels).
        paper = sheet
        for window in (3, 5, 9):
            smooth = kernels.pool(ink, window, "mean")
            level, spread = paper_statistics(smooth, sheet > 0)
            # First leaving out only clear ink (the envelope may be well off the
            # paper in places), then what stands out from the paper's noise.
            strong = tf.reduce_max(smooth)
            margin = 3.0 * spread
            if generous:
                margin = tf.maximum(margin, 0.3 * (strong - level))
            paper *= tf.cast(smooth < level + margin, tf.float32)
        # The local means on a grid `TEXTURE_STEP` times coarser (the texture
        # is smooth at that scale), where a window holds too little paper
        # (inside a wide stroke) from a wider one, then the picture's.
        coarse = tf.maximum(1, size // TEXTURE_STEP)
        paper_c = kernels.resize(paper, coarse)
        ratio_c = kernels.resize(ratio * paper, coarse)
        texture = tf.fill(coarse, 1.0 - level)
        for window in (4 * TEXTURE_WINDOW // TEXTURE_STEP, TEXTURE_WINDOW // TEXTURE_STEP):
            count = kernels.pool(paper_c, window, "sum")
            local = kernels.pool(ratio_c, window, "sum") / tf.maximum(count, 1e-6)
            texture = tf.where(count >= 0.1 * window * window, local, texture)
        texture = kernels.resize(texture, size, "bilinear")
        ink = 1.0 - ratio / tf.maximum(texture, 1e-3)
    return tf.where(table, 0.0, ink), table


def ruled_lines(mask):
    """Thin marks that run straight across the frame (ruled paper, a table's edge):
    bool (h, w). A digit's strokes are shorter, or thicker.

    Looked for at half resolution, along a few slopes (a photo is rarely
    level): a line is a run of marks covering 80% of a window `LINE_LENGTH`
    long; its pixels are dropped where the marks are thin (gone after a
    vertical erosion of 7 px, less in a small picture), so a stroke that
    crosses it stays.
    """
    marks = tf.cast(mask, tf.float32)
    half = tf.nn.max_pool2d(marks[None, ..., None], 2, 2, "SAME")[0, ..., 0]
    width = tf.shape(half)[1]
    length = tf.maximum(tf.cast(LINE_LENGTH[0] * tf.cast(width, tf.float32), tf.int32),
                        LINE_LENGTH[1] // 2)
    slopes = tf.constant(LINE_SLOPES)

    def along_slope(i, lines):  # A loop, not unrolled: a graph of a fifth the size.
        along = kernels.sheared(half, slopes[i])
        # Centres of windows mostly on a mark, then every marked pixel of such a window.
        centres = kernels.running(along, length, 1, "sum") >= 0.8 * tf.cast(length, tf.float32)
        covered = tf.cast(kernels.running(tf.cast(centres, tf.float32), length, 1, "sum") > 0,
                          tf.float32) * along
        return i + 1, tf.maximum(lines, kernels.sheared(covered, -slopes[i]))

    _, lines = tf.while_loop(lambda i, _: i < len(LINE_SLOPES), along_slope,
                             (0, tf.zeros_like(half)))
    lines = kernels.resize(lines, tf.shape(mask), "nearest") > 0
    # Thin: at most 7 px, and a twentieth of a small picture's shorter side (the
    # bar of a 2 in a tight crop spans its frame too, but is thicker).
    window = tf.clip_by_value(tf.reduce_min(tf.shape(mask)) // 20, 3, 7)
    thin = tf.logical_not(kernels.running(marks, window, 0, "min") > 0)
    return lines & thin & mask


def standing_out(ink, sheet):
    """Where ink stands out from the paper's own noise, at a pixel's scale (3x3)
    or a stroke's (a window 1/`STROKE_SCALE` of the longer side, where a faint
    stroke's many weak pixels add up and noise averages out), on the `sheet` (bool
    (h, w): not a table beyond it): bool (h, w).

    At each scale, by more than `NOISE_SIGMAS` robust standard deviations of
    that scale's own map and `INK_FLOOR` of its strongest ink.
    """
    wide = tf.maximum(3, tf.reduce_max(tf.shape(ink)) // STROKE_SCALE)
    mask = tf.zeros_like(ink, tf.bool)
    for window in (3, wide):
        smooth = kernels.pool(ink, window, "mean")
        level, spread = paper_statistics(smooth, sheet)
        strongest = tf.reduce_max(smooth)
        threshold = level + tf.maximum(NOISE_SIGMAS * spread, INK_FLOOR * (strongest - level))
        mask |= smooth > tf.maximum(threshold, level + 1e-3)
    return mask


def _table_along_left(g):
    """Where a darker surface lies beyond a straight edge of the sheet near the
    left side of the frame: bool (h, w), from a 3x3 mean of the picture.

    Along each row, the sheet's edge is the strongest step from dark to light
    (relative to the light) in the left `TABLE_REACH` of the row. A table is
    there when those steps line up (a least-squares line, refitted on the rows
    within 3 px of it) along at least `TABLE_COVERAGE` of the rows, and when
    what lies beyond that line is darker than the sheet just inside it along
    almost all of them (not the paper beside a stroke).
    """
    size = tf.shape(g)
    reach = tf.maximum(4, tf.cast(TABLE_REACH * tf.cast(size[1], tf.float32), tf.int32))
    ahead = tf.concat([g[:, 2:], tf.repeat(g[:, -1:], 2, axis=1)], axis=1)
    behind = tf.concat([tf.repeat(g[:, :1], 2, axis=1), g[:, :-2]], axis=1)
    step = (ahead - behind) / tf.maximum(ahead, 1.0)
    step = step[:, :reach]
    position = tf.cast(tf.argmax(step, axis=1), tf.float32)
    strong = tf.cast(tf.reduce_max(step, axis=1) >= TABLE_STEP, tf.float32)
    rows = tf.cast(tf.range(size[0]), tf.float32)
    weight = strong
    for _ in range(3):
        n = tf.maximum(tf.reduce_sum(weight), 1.0)
        mean_r = tf.reduce_sum(weight * rows) / n
        mean_p = tf.reduce_sum(weight * position) / n
        var = tf.reduce_sum(weight * tf.square(rows - mean_r))
        slope = tf.reduce_sum(weight * (rows - mean_r) * (position - mean_p)) / tf.maximum(
            var, 1e-6)
        line = mean_p + slope * (rows - mean_r)
        weight = strong * tf.cast(tf.abs(position - line) <= 3.0, tf.float32)
    coverage = tf.reduce_mean(weight)
    columns = tf.cast(tf.range(size[1]), tf.float32)[None, :]
    beyond = columns < line[:, None] - 1.0
    # The sheet just inside the edge, row by row, against what lies beyond it.
    inside_at = tf.clip_by_value(tf.cast(line + 5.0, tf.int32), 0, size[1] - 1)
    sheet = tf.gather(g, inside_at[:, None], batch_dims=1)
    darker = tf.cast(g < TABLE_DARKER * sheet, tf.float32)
    beyond_f = tf.cast(beyond, tf.float32) * weight[:, None]
    dark_share = tf.reduce_sum(darker * beyond_f) / tf.maximum(tf.reduce_sum(beyond_f), 1.0)
    found = (coverage >= TABLE_COVERAGE) & (dark_share >= 0.9) & (
        tf.reduce_sum(beyond_f) > 0)
    # The band and its blurred edge (3 px).
    return tf.logical_and(found, columns < line[:, None] + 3.0)


def beyond_the_sheet(gray):
    """A table or background beyond the sheet's straight edges, along any side of
    the frame (`_table_along_left`, turned to each side): bool (h, w)."""
    def flip(x):
        return x[:, ::-1]

    gray = kernels.pool(gray, 3, "mean")
    out = _table_along_left(gray)
    out |= flip(_table_along_left(flip(gray)))
    out |= tf.transpose(_table_along_left(tf.transpose(gray)))
    out |= tf.transpose(flip(_table_along_left(flip(tf.transpose(gray)))))
    return out


def candidates(ink, mask):
    """The `CANDIDATES` objects likeliest to be the digit, best first.

    Marks are grouped into objects on a grid of at most `COMPONENT_GRID`
    cells a side, where nearby strokes of one digit join. Objects are ranked
    by their ink, favouring the middle of the frame over its border (a
    shadow's edge, a table); each candidate is one object together with the
    objects whose centres fall inside its box and that are about as dark (a
    detached stroke of a 5, not what is left of a shadow's edge beside it).

    Returns:
        `(masks, share, valid)`: bool (k, h, w) marks of each candidate, the
        share of the picture's marked ink each holds, and whether it exists
        (a picture may hold fewer objects).
    """
    size = tf.shape(ink)
    grid = (COMPONENT_GRID, COMPONENT_GRID)
    coarse_ink = kernels.resize(tf.where(mask, ink, 0.0), grid)
    coarse = kernels.resize(tf.cast(mask, tf.float32), grid) > 0
    labels = kernels.components(kernels.pool(tf.cast(coarse, tf.float32), 3, "max") > 0)
    names, index = tf.unique(tf.reshape(labels, [-1]))
    count = tf.size(names)
    ys, xs = tf.meshgrid(tf.range(COMPONENT_GRID), tf.range(COMPONENT_GRID), indexing="ij")
    ys = tf.cast(tf.reshape(ys, [-1]), tf.float32)
    xs = tf.cast(tf.reshape(xs, [-1]), tf.float32)
    weights = tf.reshape(coarse_ink, [-1])

    def total(values):
        return tf.math.unsorted_segment_sum(values, index, count)

    mass = total(weights)
    # How dark each object's marks are on average (its ink over its marked area).
    marked_area = total(tf.reshape(kernels.resize(tf.cast(mask, tf.float32), grid), [-1]))
    darkness = mass / tf.maximum(marked_area, 1e-9)
    centre_y = total(ys * weights) / tf.maximum(mass, 1e-9)
    centre_x = total(xs * weights) / tf.maximum(mass, 1e-9)
    top = tf.math.unsorted_segment_min(ys, index, count)
    bottom = tf.math.unsorted_segment_max(ys, index, count)
    left = tf.math.unsorted_segment_min(xs, index, count)
    right = tf.math.unsorted_segment_max(xs, index, count)
    rows = cols = float(COMPONENT_GRID)
    marked = tf.logical_and(tf.not_equal(names, 0.0), mass > 0)
    border = (top <= 0) | (left <= 0) | (bottom >= rows - 1) | (right >= cols - 1)
    off_centre = (tf.square((centre_y + 0.5) / rows - 0.5)
                  + tf.square((centre_x + 0.5) / cols - 0.5))
    score = tf.where(marked, mass * tf.exp(-2.0 * off_centre) * tf.where(border, 0.25, 1.0),
                     -1.0)
    padded = tf.concat([score, tf.fill([CANDIDATES], -1.0)], 0)
    top_score, best = tf.math.top_k(padded, CANDIDATES)
    valid = top_score > 0
    best = tf.minimum(best, count - 1)

    def pick(values):
        return tf.gather(values, best)[:, None]

    margin_y = 0.2 * (pick(bottom) - pick(top) + 1)
    margin_x = 0.2 * (pick(right) - pick(left) + 1)
    inside = (marked[None, :] & (darkness[None, :] >= MIN_PART_DARKNESS * pick(darkness))
              & (centre_y[None, :] >= pick(top) - margin_y)
              & (centre_y[None, :] <= pick(bottom) + margin_y)
              & (centre_x[None, :] >= pick(left) - margin_x)
              & (centre_x[None, :] <= pick(right) + margin_x)) & valid[:, None]
    chosen = tf.cast(tf.reshape(tf.gather(inside, index, axis=1),
                                [CANDIDATES, *grid]), tf.float32)
    # Back to the picture's pixels: the marks in the chosen cells.
    cells = tf.image.resize(chosen[..., None], size, method="nearest")[..., 0] > 0
    masks = tf.logical_and(cells, mask[None])
    share = (tf.reduce_sum(tf.where(inside, mass[None, :], 0.0), axis=1)
             / tf.maximum(tf.reduce_sum(tf.where(marked, mass, 0.0)), 1e-9))
    return masks, share, valid


def _span(marked):
    """From the first True of a bool vector to the last, as float (first, last + 1);
    (0, 0) if none."""
    at = tf.cast(tf.where(marked)[:, 0], tf.float32)
    some = tf.size(at) > 0
    return (tf.where(some, tf.reduce_min(tf.concat([at, [0.0]], 0)), 0.0),
            tf.where(some, tf.reduce_max(tf.concat([at + 1.0, [0.0]], 0)), 0.0))


def draw(ink, paper, spread, digit):
    """One candidate's marks drawn as MNIST would, and what describes them.

    Returns:
        `(image, features)`: uint8 (28, 28), and float (`len(FEATURES)`,)
        in `FEATURES`' order (without the share, which `candidates` gives).
    """
    size = tf.cast(tf.shape(ink), tf.float32)
    # With its anti-aliased edge (a ring of one pixel), less the paper's level.
    keep = kernels.pool(tf.cast(digit, tf.float32), 3, "max") > 0
    marks = tf.where(keep, tf.maximum(ink - paper, 0.0), 0.0)
    strokes = tf.sort(tf.boolean_mask(marks, digit))
    count = tf.size(strokes)
    # The strokes' level becomes 255: their darkest pixel, less what the paper's
    # noise can add to one pixel (nothing in a clean picture), but never below
    # the 99th percentile.
    level = tf.cond(count > 0, lambda: tf.maximum(kernels.percentile(strokes, 99),
                                                  strokes[-1] - 12.0 * spread), lambda: 0.0)
    pixels = tf.cast(count, tf.float32)
    solid = tf.reduce_sum(tf.cast(kernels.pool(tf.cast(digit, tf.float32), 2, "min") > 0,
                                  tf.float32)) / tf.maximum(pixels, 1.0)
    # Hysteresis: faint marks of the digit's object farther than 2 px from its
    # strong strokes (what is left of a shadow's edge touching the digit) go.
    strong = tf.logical_and(digit, marks >= FAINT_INK * level)
    marks = tf.where(kernels.pool(tf.cast(strong, tf.float32), 5, "max") > 0, marks, 0.0)
    image = tf.cond(level > 0, lambda: mnist_box(tf.minimum(marks * (255.0 / tf.maximum(
        level, 1e-6)), 255.0)), lambda: tf.zeros(IMAGE_SHAPE, tf.uint8))

    top, bottom = _span(tf.reduce_any(digit, axis=1))
    left, right = _span(tf.reduce_any(digit, axis=0))
    height, width = bottom - top, right - left
    # How much of each side of its box lies on the frame's edge (a table's band
    # along its whole length, a tight crop's strokes at a few points).
    edges = tf.stack([tf.reduce_sum(tf.cast(digit[0], tf.float32)) / tf.maximum(width, 1.0),
                      tf.reduce_sum(tf.cast(digit[-1], tf.float32)) / tf.maximum(width, 1.0),
                      tf.reduce_sum(tf.cast(digit[:, 0], tf.float32)) / tf.maximum(height, 1.0),
                      tf.reduce_sum(tf.cast(digit[:, -1], tf.float32)) / tf.maximum(height, 1.0)])
    centre = tf.stack([(top + bottom) / 2 / size[0] - 0.5, (left + right) / 2 / size[1] - 0.5])
    features = tf.stack([
        tf.maximum(height, width) / tf.reduce_max(size),           # extent
        height / size[0],
        width / size[1],
        tf.math.log((height + 1.0) / (width + 1.0)),               # aspect
        pixels / tf.maximum(height * width, 1.0),                  # fill
        solid,
        level,                                                     # darkness
        tf.reduce_max(edges),                                      # contact
        tf.reduce_sum(tf.cast(edges > 0, tf.float32)) / 4.0,       # sides touched
        tf.sqrt(tf.reduce_sum(tf.square(centre))),                 # off-centre
    ])
    return image, features


def mnist_box(ink):
    """A white-on-black picture of the digit alone (float 0..255) -> MNIST's layout.

    Cropped to the digit (ink above 10% of the strongest), longer side scaled
    to 20 px keeping the aspect ratio (Lanczos, antialiased), pasted into 28x28
    with its centre of mass at the centre.
    """
    peak = tf.reduce_max(ink)
    rows = tf.where(tf.reduce_max(ink, axis=1) > 0.1 * peak)[:, 0]
    cols = tf.where(tf.reduce_max(ink, axis=0) > 0.1 * peak)[:, 0]
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    size = tf.cast(tf.shape(crop), tf.float32)
    scale = DIGIT_BOX / tf.reduce_max(size)
    new_size = tf.maximum(1, tf.cast(tf.round(size * scale), tf.int32))
    small = tf.image.resize(crop[..., None], new_size, method="lanczos3",
                            antialias=True)[..., 0]
    small = tf.clip_by_value(small, 0.0, 255.0)

    total = tf.reduce_sum(small)
    ys = tf.cast(tf.range(new_size[0]), tf.float32)[:, None]
    xs = tf.cast(tf.range(new_size[1]), tf.float32)[None, :]
    centre = tf.stack([tf.reduce_sum(ys * small), tf.reduce_sum(xs * small)]) / total
    room = tf.constant(IMAGE_SHAPE) - new_size
    top_left = tf.clip_by_value(
        tf.cast(tf.round(tf.constant(IMAGE_SHAPE, tf.float32) / 2 - centre), tf.int32),
        0, room)
    out = tf.pad(small, tf.stack([top_left, room - top_left], axis=1))
    out = tf.cast(tf.round(out), tf.uint8)
    out.set_shape(IMAGE_SHAPE)
    return out


def drawn_candidates(pixels):
    """Every candidate for the digit in a picture, drawn as MNIST would.

    Returns:
        `(images, features, valid, masks)`: uint8 (k, 28, 28), float
        (k, len(FEATURES)), bool (k,), and each candidate's marks, bool
        (k, h, w) on the working picture (`working_gray`).
    """
    ink, table = flat_ink(pixels)
    sheet = tf.logical_not(table)
    paper, spread = paper_statistics(ink, sheet)
    mask = tf.logical_and(standing_out(ink, sheet), sheet)
    mask = tf.logical_and(mask, tf.logical_not(ruled_lines(mask)))
    masks, share, valid = candidates(ink, mask)
    def drawn(args):  # A candidate that does not exist costs nothing.
        digit, exists = args
        return tf.cond(exists, lambda: draw(ink, paper, spread, digit),
                       lambda: (tf.zeros(IMAGE_SHAPE, tf.uint8),
                                tf.zeros([len(FEATURES) - 1], tf.float32)))

    images, features = tf.map_fn(
        drawn, (masks, valid),
        fn_output_signature=(tf.TensorSpec(IMAGE_SHAPE, tf.uint8),
                             tf.TensorSpec([len(FEATURES) - 1], tf.float32)))
    return images, tf.concat([share[:, None], features], 1), valid, masks


def choose(images, features, valid):
    """Each picture's digit among its candidates, and whether there is one: the
    verifier scores every candidate of every picture in one call, the digit is
    each picture's likeliest, and there is a digit when it is at least
    `DIGIT_LIKELY`.

    Args:
        images, features, valid: `drawn_candidates`' of n pictures, stacked:
            uint8 (n, k, 28, 28), float (n, k, len(FEATURES)), bool (n, k).

    Returns:
        `(image, found, likelihood, extent)`: uint8 (n, 28, 28) (zeros when
        nothing stands out), bool (n,), and the chosen candidate's verifier
        probability and size (a share of the picture's longer side), for
        the refusal's message.
    """
    n = tf.shape(images)[0]
    scores = verifier.score(tf.reshape(images, [-1, *IMAGE_SHAPE]),
                            tf.reshape(features, [-1, len(FEATURES)]))
    likely = tf.where(valid, tf.reshape(scores, [n, CANDIDATES]), 0.0)
    best = tf.argmax(likely, axis=1, output_type=tf.int32)

    def pick(values):
        return tf.gather(values, best, batch_dims=1)

    likelihood = pick(likely)
    return (pick(images), likelihood >= DIGIT_LIKELY, likelihood,
            pick(features)[:, FEATURES.index("extent")])


# Traced once per process, then called from every graph that reads a picture
# (the served signature, `preprocess`, `to_mnist`), which each hold one call.
@tf.function(input_signature=[tf.TensorSpec([None, None, None], tf.uint8)], autograph=False)
def traced_candidates(pixels):
    """`drawn_candidates` without the masks: `(images, features, valid)`."""
    images, features, valid, _ = drawn_candidates(pixels)
    return images, features, valid


def read_digit(pixels):
    """The digit in one picture as MNIST would draw it, and whether there is one
    (`drawn_candidates`, then `choose`): `(image, found, likelihood, extent)`."""
    images, features, valid = traced_candidates(pixels)
    image, found, likelihood, extent = choose(images[None], features[None], valid[None])
    return image[0], found[0], likelihood[0], extent[0]


# Plain TensorFlow ops with explicit tf.cond / tf.while_loop: autograph has nothing
# to convert, and skipping it halves the time to trace the front end (every export).
@tf.autograph.experimental.do_not_convert
def to_mnist(pixels):
    """Finds the digit in any picture of one and draws it as MNIST would: 28x28 uint8.

    As a careful person would: grayscale (transparent pixels count as paper);
    shrunk to at most `WORK_SIZE` a side; light ink on a dark ground inverted
    to pen on paper; a table beyond the sheet's straight edge left out; the
    paper's brightness (light, shadows) and texture estimated at every point
    and divided out; ink is what stands out from the paper by more than its
    noise (`NOISE_SIGMAS`) at a pixel's or a stroke's scale, everything else
    exactly 0; thin lines across the frame (ruled paper) dropped; the
    likeliest objects drawn in MNIST's layout (`drawn_candidates`), and the
    one the verifier finds most like a digit kept (`read_digit`). A clean
    picture (even paper, no noise) gives what cropping its ink directly
    gives. Result: a white digit on black, 0..255.

    Args:
        pixels: uint8 tensor (height, width, channels), 1 to 4 channels.

    Raises:
        tf.errors.InvalidArgumentError: no digit in the picture: nothing in
            it stands out from the paper, or nothing that does looks like a
            digit (blank paper, a table, noise, texture).
    """
    image, found, likelihood, extent = read_digit(pixels)
    check = tf.debugging.Assert(found, [
        contract.refusal(contract.BLANK_RULE, contract.BLANK_FIGURES[0]), likelihood,
        contract.BLANK_FIGURES[1], extent, contract.BLANK_FIGURES[2]])
    with tf.control_dependencies([check]):
        return tf.identity(image)
