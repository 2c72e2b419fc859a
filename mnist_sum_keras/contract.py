"""The model's input contract, defined once and checked the same way at every door.

What `image`, `number` and `image_bytes` must be, the messages that refuse
anything else, a NumPy check for the Python doors (the API, the scripts, the
REST client) and a graph check for the served signatures and the model. The
module imports no TensorFlow, so the REST client does not either; the graph
checks import it when they are built.
"""

import re

import numpy as np

from mnist_sum_keras.config import IMAGE_SHAPE, NUM_DIGITS

# The served signatures (TF Serving's `signature_name`).
SIGNATURE_KEY = "serving_default"
PREDICT_IMAGE_KEY = "predict_image"

MAX_PIXEL = 255
# Largest encoded image `predict_image` decodes, judged from its header before
# decoding (a small file can claim billions of pixels: a decompression bomb).
MAX_IMAGE_PIXELS = 4096 * 4096
# Most scans a JPEG may hold. Each scan of a progressive JPEG is entropy-decoded
# over all of the picture's coefficients: a 4096x4096 one repeating a tiny scan
# 1,000 times is 158 kB and took 10 s to decode (a 10 MB body, about an hour).
# Cameras and encoders write 1 (baseline) to about 10-20.
MAX_JPEG_SCANS = 100
# Formats `tf.io.decode_image` reads.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP")

# The rules, each a message prefix; a refusal appends ". Received: ...".
IMAGE_SHAPE_RULE = "image must have shape [batch, 28, 28]"
IMAGE_VALUE_RULE = "image pixels must be integers in 0..255 (uint8, as MNIST stores them)"
NUMBER_SHAPE_RULE = "number must have shape [batch]"
NUMBER_VALUE_RULE = "number must be an integer in 0..9"
NUMBER_COUNT_RULE = "give one number for all images or one per image"
EMPTY_RULE = "the batch is empty: send at least one image"
BATCH_RULE = "image and number must have the same batch size"
IMAGE_BYTES_SHAPE_RULE = "image_bytes must have shape [batch] (one encoded image each)"
IMAGE_BYTES_FORMAT_RULE = ("image_bytes must be " + ", ".join(IMAGE_FORMATS[:-1])
                           + f" or {IMAGE_FORMATS[-1]} bytes")
IMAGE_BYTES_SIZE_RULE = (f"image_bytes must decode to at most {MAX_IMAGE_PIXELS:,} pixels "
                         "(checked on the header, before decoding)")
IMAGE_BYTES_SCANS_RULE = (f"a JPEG in image_bytes must have at most {MAX_JPEG_SCANS} scans "
                          "(checked before decoding)")
BLANK_RULE = "the image is blank: no digit stands out from the background"
# The figures a no-digit refusal carries (the front end's `to_mnist`), and what a
# person is told instead of them (`no_digit_words`; the page's app.js says the
# same): nothing stood out, what did is tiny, or nothing looks like a digit.
BLANK_FIGURES = ("the likeliest mark looks like a digit with probability", "and spans",
                 "of the longer side")
SMALL_MARK = 0.1
NO_DIGIT_WORDS = {
    "blank": "No digit found: the picture looks blank.",
    "small": "No digit found: what stands out is too small in the frame "
             "(move closer, or crop the picture to the digit).",
    "unlike": "No digit found: nothing in the picture looks like a digit.",
}
# Inputs whose every value must be an integer in 0..maximum: (maximum, rule).
VALUE_RULES = {"image": (MAX_PIXEL, IMAGE_VALUE_RULE),
               "number": (NUM_DIGITS - 1, NUMBER_VALUE_RULE)}


def refusal(rule, received):
    """The message of a refused input: the rule, then what was received."""
    return f"{rule}. Received: {received}"


def _array(value, shape_rule, dtype=None):
    try:
        return np.asarray(value, dtype=dtype)
    except ValueError:   # NumPy refuses ragged nested lists.
        raise ValueError(refusal(shape_rule, "a ragged nested list")) from None


def _is_number_array(array):
    return (np.issubdtype(array.dtype, np.integer)
            or np.issubdtype(array.dtype, np.floating)) and array.dtype != np.bool_


def check_images(images):
    """Checks a batch of raw MNIST-style images; returns uint8 (N, 28, 28).

    Accepts any array (or nested lists) of shape (N, 28, 28), N >= 1, whose
    values are integers 0..255: uint8 as MNIST stores them, or another numeric
    dtype holding such values (e.g. JSON's integers). Refuses float images
    0..1, NaN, out-of-range pixels and other shapes, a channel axis
    (N, 28, 28, 1) included, rather than guessing.

    Raises:
        ValueError: naming the input, what is expected and what was received.
    """
    images = _array(images, IMAGE_SHAPE_RULE)
    shape = tuple(images.shape)
    if images.ndim != 3 or shape[1:] != IMAGE_SHAPE:
        raise ValueError(refusal(IMAGE_SHAPE_RULE, f"shape={shape}"))
    if shape[0] == 0:
        raise ValueError(refusal(EMPTY_RULE, f"image shape={shape}"))
    if images.dtype != np.uint8:
        if not _is_number_array(images):
            raise ValueError(refusal(IMAGE_VALUE_RULE, f"dtype={images.dtype}"))
        bad = images[~np.isfinite(images) | (images != np.round(images))
                     | (images < 0) | (images > MAX_PIXEL)]
        if bad.size:
            raise ValueError(refusal(IMAGE_VALUE_RULE,
                                     f"a pixel of {bad.flat[0].item()!r} (dtype={images.dtype})"))
    return images.astype(np.uint8)


def check_numbers(numbers, count):
    """One number for all `count` images or one per image, each an integer 0..9.

    Accepts Python integers or an integer array; refuses bools, floats (even
    3.0: a float here is a mistake upstream), strings and None.

    Returns:
        int32 array of `count` numbers.

    Raises:
        ValueError: naming the input and the value received.
    """
    array = _array(numbers, NUMBER_SHAPE_RULE, dtype=object)
    if array.ndim != 1:
        raise ValueError(refusal(NUMBER_SHAPE_RULE, f"shape={array.shape}"))
    if len(array) not in (1, count):
        raise ValueError(refusal(f"{NUMBER_COUNT_RULE} ({count})",
                                 f"{len(array)} numbers"))
    for n in array:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not (
                0 <= n < NUM_DIGITS):
            raise ValueError(refusal(NUMBER_VALUE_RULE, f"number={n!r}"))
    values = np.array(array.tolist(), np.int32)
    return np.repeat(values, count) if len(values) == 1 else values


def error_text(error):
    """The message of a graph's InvalidArgument without TensorFlow's trace lines: the
    rule and what was received, for a REST answer or an `ImageError`."""
    noise = ("Graph execution error", "Detected at node", "<stack", "[[", "File ")
    lines = [line.strip() for line in error.message.splitlines()]
    for line in lines:
        if line.startswith("assertion failed:"):
            # "[<rule>. Received: x=] [10]" -> "<rule>. Received: x=[10]"
            text = line[len("assertion failed:"):].strip()
            return re.sub(r"^\[(.*Received: [^\]]*?)\] ?",
                          lambda m: m[1] if m[1].endswith("=") else m[1] + " ", text)
    return next((line for line in lines if line and not line.startswith(noise)),
                error.message)


def no_digit_words(message):
    """What to tell a person for a no-digit refusal (`BLANK_RULE` with its figures),
    from `NO_DIGIT_WORDS`; None for any other message."""
    # A graph's assertion prints each of its parts in brackets, words included.
    figures = re.search(re.escape(BLANK_FIGURES[0]) + r"\]? \[?([-+0-9.e]+)\]? \[?"
                        + re.escape(BLANK_FIGURES[1]) + r"\]? \[?([-+0-9.e]+)\]?", message)
    if BLANK_RULE not in message or figures is None:
        return None
    likelihood, extent = float(figures[1]), float(figures[2])
    if likelihood == 0:   # Nothing stood out from the paper at all.
        return NO_DIGIT_WORDS["blank"]
    return NO_DIGIT_WORDS["small" if extent < SMALL_MARK else "unlike"]


# --- Graph checks: the same rules inside TensorFlow graphs -------------------

def _runtime_shape(tensor):
    import tensorflow as tf

    # Serving does not enforce a signature's declared shapes, and the graph
    # optimiser folds shape ops it can infer from them: a rank check on the
    # [None, 28, 28] input would be folded to "true". PlaceholderWithDefault
    # passes the tensor through with an unknown static shape, so the checks
    # below read the shape of what was actually sent.
    opaque = tf.raw_ops.PlaceholderWithDefault(input=tensor, shape=tf.TensorShape(None))
    return tf.shape(opaque)


def _shape_is(shape, item_shape):
    """True when `shape` is [batch, *item_shape] (runtime int32 vector)."""
    import tensorflow as tf

    rank = len(item_shape) + 1
    # Padded to a fixed length so that comparing works for any rank sent.
    padded = tf.concat([shape, tf.zeros([rank], tf.int32)], axis=0)[:rank]
    return tf.logical_and(tf.equal(tf.size(shape), rank),
                          tf.reduce_all(tf.equal(padded[1:], item_shape)))


def _assert(condition, rule, received_name, received):
    import tensorflow as tf

    return tf.debugging.Assert(condition, [f"{rule}. Received: {received_name}=", received],
                               summarize=8)


def _first(shape):
    """shape[0], or 0 for a scalar: an op that cannot fail on any shape."""
    import tensorflow as tf

    return tf.concat([shape, [0]], axis=0)[0]


def guarded(items, items_name, number, item_shape, shape_rule, answer, output_specs):
    """Runs `answer()` only for inputs that keep the batch rules; refuses others.

    The rules: `items` of shape [batch, *item_shape], `number` of shape
    [batch], the same non-empty batch. A refusal is InvalidArgument (HTTP 400
    from TF Serving) with the rule's message. The model sits in the taken
    branch of a `tf.cond`, so it never sees a refused input: the graph
    optimiser plans the model for the declared shapes (it folds shape ops and
    drops reshapes it deems no-ops), and a wrong-rank input reaching it would
    fail there with an obscure message, in a race with the check's.

    Args:
        items: the first input (`image` or `image_bytes`) as fed.
        items_name: its name, for the messages.
        number: the `number` input as fed.
        item_shape: the shape of one item (a tuple).
        shape_rule: the message for a wrong shape of `items`.
        answer: a function returning the outputs (a dict) for valid inputs.
        output_specs: `{name: tf.TensorSpec}` of those outputs, batch first.

    Returns:
        `answer()`'s outputs.
    """
    import tensorflow as tf

    items_shape, number_shape = _runtime_shape(items), _runtime_shape(number)
    batch, numbers = _first(items_shape), _first(number_shape)
    rules = [
        (_shape_is(items_shape, item_shape), shape_rule, "shape", items_shape),
        (_shape_is(number_shape, ()), NUMBER_SHAPE_RULE, "shape", number_shape),
        (batch > 0, EMPTY_RULE, f"{items_name} shape", items_shape),
        (tf.equal(batch, numbers), BATCH_RULE, f"{items_name} and number shapes",
         tf.stack([batch, numbers])),
    ]
    ok = tf.reduce_all(tf.stack([rule[0] for rule in rules]))

    def refuse():
        # The first broken rule raises; the zeros only give the branch a structure.
        checks = []
        for rule in rules:
            with tf.control_dependencies(checks):
                checks.append(_assert(*rule))
        with tf.control_dependencies(checks):
            return {name: tf.zeros([0, *spec.shape[1:]], spec.dtype)
                    for name, spec in output_specs.items()}

    return tf.cond(ok, answer, refuse)


def graph_value_check(values, name, maximum, rule):
    """Assert op: every value of `values` (float) is an integer in 0..maximum."""
    import tensorflow as tf

    ok = tf.logical_and(tf.equal(values, tf.round(values)),
                        tf.logical_and(values >= 0, values <= maximum))
    # NaN fails every comparison, so it is refused too.
    bad = tf.boolean_mask(values, tf.logical_not(ok))
    return _assert(tf.reduce_all(ok), rule, name, bad)
