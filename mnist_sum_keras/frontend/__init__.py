"""A user's picture -> MNIST's 28x28: find the digit and draw it as MNIST was drawn.

    decode.py    bytes -> pixels (the size guard, the decoders, gray levels)
    kernels.py   tensor kernels (quantiles, running windows, components)
    stages.py    paper, ink, ruled lines, the digit, MNIST's box: `to_mnist`
    pipeline.py  the doors: `read_images` (the served graph: an outcome per
                 picture), `preprocess` and `load_image` (eager)
"""

from mnist_sum_keras.frontend.pipeline import (  # noqa: F401  The front end's API.
    ImageError,
    NoDigitError,
    load_image,
    preprocess,
    read_image,
    read_images,
    to_mnist,
)
