"""Hyper-parameters of a training run, in one frozen dataclass."""

import dataclasses
import json
import math
import re

# Named constants of the task.
NUM_DIGITS = 10
NUM_SUMS = 2 * (NUM_DIGITS - 1) + 1  # 0..18
IMAGE_SHAPE = (28, 28)
MODEL_NAME = "mnist_sum"
# Environment variable naming a local MNIST npz (Keras layout).
DATA_ENV_VAR = "MNIST_SUM_DATA"
SUM_MERGES = ("digit_probabilities", "features")
OPTIMIZERS = ("adamw", "sgd")
# What the convolution stages see: the 28x28 image, or its 2x2 blocks as 4
# channels at 14x14 (`Config.stem`).
STEMS = ("full_resolution", "space_to_depth")
# tf.distribute strategies that `scripts/train.py --strategy` offers.
STRATEGIES = ("default", "mirrored", "multi-worker")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run.

    Attributes:
        epochs: Passes over the training split.
        batch_size: Examples per training step.
        learning_rate: Peak learning rate of the warm-up + cosine schedule.
        warmup_epochs: Epochs of linear warm-up from 0 to `learning_rate`.
        optimizer: "adamw", or "sgd" (Nesterov momentum 0.9).
        weight_decay: Decoupled weight decay (scaled by the learning rate).
        label_smoothing: Weight of the uniform distribution mixed into each
            head's one-hot target (Szegedy et al. 2016); 0 trains on the plain
            labels.
        ema_momentum: Momentum of an exponential moving average of the weights
            (the optimizer's `use_ema`), which is then what is validated,
            checkpointed and released (`keras.callbacks.SwapEMAWeights`);
            0 trains without one. Its horizon is about 1 / (1 - momentum) steps.
        seed: Seeds weights, shuffling, training numbers and augmentation;
            evaluation numbers use `seed` too, so held-out pairs never change.
        validation_size: Images held out from the end of the training split for
            model selection (the test split is never used for that).
        stem: What the first convolution stage sees: "space_to_depth" (each
            2x2 block of pixels as 4 channels of a 14x14 image: a lossless
            halving of the resolution before any convolution) or
            "full_resolution" (the 28x28 image).
        conv_filters: Channels of each convolution stage; every stage is
            `stage_blocks` 3x3 conv + batch-norm + ReLU blocks followed by 2x2
            max-pooling.
        stage_blocks: Conv blocks of each stage, the first stage first; the
            stages beyond its length take its last value, so (2,) is two
            blocks everywhere and (1, 2) one block at full resolution, where
            a block costs most, and two in every later stage.
        feature_units: Width of the image embedding read by both heads.
        sum_units: Widths of the sum head's hidden layers after the merge of
            the image embedding with the one-hot number.
        sum_merge: What of the image the sum head merges with the one-hot
            number: "digit_probabilities" (the digit head's 10 probabilities,
            so the sum head sees the image only as the digit head does, which
            keeps the two answers consistent) or "features" (the embedding).
        members: Networks in the committee: each its own trunk (convolutions,
            embedding and digit head), initialisation and distortion draw,
            trained on its own digit loss (`member<i>_digit`); the `digit`
            output is their probabilities averaged, and the sum head merges
            that average. 1 is a single network (and the layer names of
            earlier releases).
        fused_batch_norm: Convolution batch-norms as `FusedBatchNormalization`
            (one fused op in training, same results); False uses
            `keras.layers.BatchNormalization` as it is.
        dropout: Dropout rate on the image embedding.
        max_shift: Largest random translation, as a fraction of the image side.
        max_rotation: Largest random rotation, as a fraction of a full turn.
        max_zoom: Largest random zoom in or out, as a fraction of the size.
        max_aspect: Largest random stretch of the width against the height,
            as a fraction.
        max_shear: Largest random horizontal shear (shift per pixel of height).
        elastic_alpha: Scale, in pixels, of the random elastic distortion
            (Simard et al. 2003); 0 turns it off.
        elastic_sigma: Smoothness, in pixels, of the elastic distortion.
        max_stroke: Largest random change of stroke width, as a share of a
            3x3 grey-level dilation (thicker) or erosion (thinner) blended
            into the distorted image; 0 keeps MNIST's strokes.
        box_fill: Share of training digits stretched to fill a square (the
            shorter side of the ink's box scaled to the longer, at most 3x)
            before the other distortions, as some scanners normalise digits
            (Semeion's); 0 keeps MNIST's aspect ratios.
        test_zoom: Magnification of every image at inference only (bilinear,
            about the centre: `augment.TestTimeZoom`); 1 reads images as they
            come.
        data_path: Local MNIST npz in the Keras layout; None downloads it with
            `keras.datasets.mnist.load_data()` (or reads `MNIST_SUM_DATA`).
        output_dir: Folder that receives `mnist_sum/<version>/` exports.
    """

    epochs: int = 18
    batch_size: int = 128
    learning_rate: float = 3e-3
    warmup_epochs: float = 1.0
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    ema_momentum: float = 0.0
    seed: int = 1
    validation_size: int = 5000
    stem: str = "full_resolution"
    conv_filters: tuple = (16, 32, 64)
    stage_blocks: tuple = (2,)
    feature_units: int = 128
    sum_units: tuple = (128, 128)
    sum_merge: str = "digit_probabilities"
    members: int = 2
    fused_batch_norm: bool = True
    dropout: float = 0.2
    max_shift: float = 0.1
    max_rotation: float = 0.03
    max_zoom: float = 0.1
    max_aspect: float = 0.1
    max_shear: float = 0.1
    elastic_alpha: float = 0.0
    elastic_sigma: float = 5.0
    max_stroke: float = 0.0
    box_fill: float = 0.0
    test_zoom: float = 1.0
    data_path: str | None = None
    output_dir: str = "saved_models"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "feature_units", "members"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} must be a positive integer. Received: {name}={value!r}"
                )
        if self.validation_size < 0:
            raise ValueError(
                "validation_size must be >= 0. "
                f"Received: validation_size={self.validation_size}"
            )
        if not self.learning_rate > 0:
            raise ValueError(
                f"learning_rate must be > 0. Received: learning_rate={self.learning_rate}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label_smoothing must be in [0, 1). "
                             f"Received: label_smoothing={self.label_smoothing}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")
        if not 0 <= self.ema_momentum < 1:
            raise ValueError("ema_momentum must be in [0, 1). "
                             f"Received: ema_momentum={self.ema_momentum}")
        # Distortion sizes; a zoom or stretch of 1 could shrink an image to nothing.
        for name, upper in (("max_shift", None), ("max_rotation", None), ("max_zoom", 1),
                            ("max_aspect", 1), ("max_shear", None), ("elastic_alpha", None)):
            value = getattr(self, name)
            if value < 0 or (upper is not None and value >= upper):
                expected = f"in [0, {upper})" if upper else ">= 0"
                raise ValueError(f"{name} must be {expected}. Received: {name}={value}")
        for name in ("max_stroke", "box_fill"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]. "
                                 f"Received: {name}={getattr(self, name)}")
        if not self.elastic_sigma > 0:
            raise ValueError("elastic_sigma must be > 0. "
                             f"Received: elastic_sigma={self.elastic_sigma}")
        if not 0.5 <= self.test_zoom <= 2:
            raise ValueError(f"test_zoom must be in [0.5, 2]. Received: test_zoom={self.test_zoom}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}. "
                             f"Received: optimizer={self.optimizer!r}")
        if self.stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}. Received: stem={self.stem!r}")
        # Each stage halves the side (floor): it must stay at least 1 pixel.
        side = IMAGE_SHAPE[0] // (2 if self.stem == "space_to_depth" else 1)
        if not self.conv_filters or side // 2 ** len(self.conv_filters) < 1:
            raise ValueError(
                f"conv_filters must hold 1 to {int(math.log2(side))} stages with "
                f"stem={self.stem!r}. Received: conv_filters={tuple(self.conv_filters)}")
        if not (1 <= len(self.stage_blocks) <= len(self.conv_filters)
                and all(isinstance(b, int) and 1 <= b <= 26 for b in self.stage_blocks)):
            raise ValueError(
                "stage_blocks must hold 1 to len(conv_filters) integers in 1..26. "
                f"Received: stage_blocks={tuple(self.stage_blocks)}")
        if self.sum_merge not in SUM_MERGES:
            raise ValueError(f"sum_merge must be one of {SUM_MERGES}. "
                             f"Received: sum_merge={self.sum_merge!r}")
        if self.members > 1 and self.sum_merge != "digit_probabilities":
            raise ValueError("members > 1 needs sum_merge='digit_probabilities' (the sum "
                             "head merges the committee's averaged digit probabilities). "
                             f"Received: members={self.members}, sum_merge={self.sum_merge!r}")
        # Tuples survive JSON as lists; normalise so configs compare equal.
        object.__setattr__(self, "conv_filters", tuple(self.conv_filters))
        object.__setattr__(self, "sum_units", tuple(self.sum_units))
        object.__setattr__(self, "stage_blocks", tuple(self.stage_blocks))

    def blocks(self, stage):
        """Conv blocks of stage `stage` (0 is the first)."""
        return self.stage_blocks[min(stage, len(self.stage_blocks) - 1)]

    @classmethod
    def field_help(cls):
        """Each field's description in the `Attributes:` docstring, by name."""
        attributes = cls.__doc__.split("Attributes:", 1)[1]
        found, name = {}, None
        for line in attributes.splitlines():
            match = re.match(r"^ {8}(\w+): (.*)$", line)
            if match:
                name = match.group(1)
                found[name] = match.group(2).strip()
            elif name and line.strip():
                found[name] += " " + line.strip()
        return found

    def to_dict(self, data=None):
        """The fields as a dict; with `data`, that replaces the machine's `data_path`.

        Args:
            data: where the data came from, e.g. `data.describe_source(...)`
                (`{"source", "sha256"}`), recorded under "data" while
                `data_path` becomes None (a path means nothing on another
                machine).
        """
        values = dataclasses.asdict(self)
        if data is not None:
            values.update(data_path=None, data=data)
        return values

    def to_json(self, path, data=None):
        """Writes `to_dict(data)` as JSON to `path`."""
        with open(path, "w") as f:
            json.dump(self.to_dict(data), f, indent=2)

    @classmethod
    def from_json(cls, path):
        """Reads a config written by `to_json` (its "data" record is not a field)."""
        with open(path) as f:
            values = json.load(f)
        values.pop("data", None)
        return cls(**values)
