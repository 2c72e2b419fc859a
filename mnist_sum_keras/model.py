"""The two-input, two-output network: build_model(config) -> keras.Model."""

import re
import string

import keras
import tensorflow as tf
from keras import layers

from mnist_sum_keras import contract
from mnist_sum_keras.augment import RandomDistortion, TestTimeZoom, distortion_sizes
from mnist_sum_keras.config import IMAGE_SHAPE, NUM_DIGITS, NUM_SUMS

# Distortion seed of committee member m: config.seed + m * this (members of
# runs with nearby seeds draw differently).
MEMBER_SEED_STRIDE = 1_000_003
MEMBER_DIGIT = re.compile(r"member\d+_digit")


def _augmentation(config, seed, prefix=""):
    # Rotations, zooms, stretches, shears, shifts and elastic bends: the
    # variations of handwriting that MNIST's centring leaves, in one
    # resampling per image (training only; nothing when all sizes are 0).
    sizes = distortion_sizes(config)
    if not any(sizes.values()):
        return []
    return [RandomDistortion(**sizes, elastic_sigma=config.elastic_sigma,
                             seed=seed, name=f"{prefix}distort")]


@keras.saving.register_keras_serializable(package="mnist_sum_keras")
class FusedBatchNormalization(layers.BatchNormalization):
    """`BatchNormalization` whose training step on NHWC float32 images is one op.

    Keras 3's TensorFlow backend normalises with about ten elementwise ops
    (`tf.nn.moments` + `tf.nn.batch_normalization`); profiles of a training
    step (`python -m bench.profile --keras-batch-norm`) showed them taking
    30-45% of the op time of this network on a CPU, more than the
    convolutions' forward passes (about 10% fused: `python -m bench.profile`).
    `tf.compat.v1.nn.fused_batch_norm` does the same in one fused kernel (and
    its gradient in another). Same variables, same config and the same
    inference path as the parent; only the training-mode batch statistics
    differ, by the unbiased variance (n / (n - 1), n = batch x height x width)
    that the fused op hands to the moving variance.
    Anything else (other ranks, axes, dtypes, masks, renorm, synchronized
    statistics, no scale or centre) takes the parent's path.
    """

    def _fusable(self, inputs, training, mask):
        return (training and self.trainable and mask is None
                and keras.backend.backend() == "tensorflow"
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and inputs.dtype == "float32" and self.scale and self.center
                and not self.renorm and not self.synchronized)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon,
            data_format="NHWC", is_training=True)
        self.moving_mean.assign(
            self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs


@keras.saving.register_keras_serializable(package="mnist_sum_keras")
class IntegerCheck(layers.Layer):
    """Passes an input on after checking that it holds integers in its range.

    The model's inputs are float32, so a caller's values reach this layer
    uncast: `model.predict`, `model(x)` and the SavedModel refuse a number of
    10 (whose one-hot would be all zeros and give a confident wrong sum), 3.5
    or -0.5 (which an int32 input would truncate to 3 or 0), and pixels of 300
    or 0.5 (which a uint8 input would wrap or zero) with InvalidArgument
    naming the input (`contract.VALUE_RULES`), instead of answering.

    Args:
        input_name: "image" or "number": which rule of the contract applies.
        output_dtype: dtype of the output ("int32" feeds the one-hot).
    """

    def __init__(self, input_name, output_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        if input_name not in contract.VALUE_RULES:
            raise ValueError(f"input_name must be one of {sorted(contract.VALUE_RULES)}. "
                             f"Received: input_name={input_name!r}")
        self.input_name, self.output_dtype = input_name, output_dtype

    def call(self, inputs):
        maximum, rule = contract.VALUE_RULES[self.input_name]
        check = contract.graph_value_check(inputs, self.input_name, maximum, rule)
        with tf.control_dependencies([check]):
            return tf.cast(inputs, self.output_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "input_name": self.input_name,
                "output_dtype": self.output_dtype}


@keras.saving.register_keras_serializable(package="mnist_sum_keras")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against smoothed one-hot targets.

    Keras' `SparseCategoricalCrossentropy` has no `label_smoothing`; this is
    `categorical_crossentropy(one_hot(labels), probabilities, label_smoothing)`.

    Args:
        num_classes: width of the head.
        label_smoothing: in [0, 1).
    """

    def __init__(self, num_classes, label_smoothing=0.0,
                 name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.losses.categorical_crossentropy(
            keras.ops.one_hot(labels, self.num_classes), y_pred,
            label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "label_smoothing": self.label_smoothing}


def _loss(num_classes, label_smoothing):
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    return SmoothedSparseCrossentropy(num_classes, label_smoothing)


def _conv_block(x, filters, name, fused_batch_norm):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    norm = FusedBatchNormalization if fused_batch_norm else layers.BatchNormalization
    x = norm(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _space_to_depth(x, prefix=""):
    # (28, 28, 1) -> (14, 14, 4): pixel (2i + a, 2j + b) becomes channel 2a + b
    # of (i, j). Nothing is lost, and the first convolutions run on a quarter
    # of the positions with 4x the channels (what CPUs' kernels do well).
    height, width = IMAGE_SHAPE
    x = layers.Reshape((height // 2, 2, width // 2, 2), name=f"{prefix}stem_split")(x)
    x = layers.Permute((1, 3, 2, 4), name=f"{prefix}stem_permute")(x)
    return layers.Reshape((height // 2, width // 2, 4), name=f"{prefix}stem_merge")(x)


def _network(x, config, prefix, seed):
    """One network of the committee: distortion, convolutions, embedding and
    digit head, its layers' names prefixed. Returns `(features, digit)`."""
    for layer in _augmentation(config, seed, prefix):
        x = layer(x)
    if config.stem == "space_to_depth":
        x = _space_to_depth(x, prefix)
    for stage, filters in enumerate(config.conv_filters):
        for block in string.ascii_lowercase[:config.blocks(stage)]:
            x = _conv_block(x, filters, f"{prefix}stage{stage}{block}",
                            config.fused_batch_norm)
        x = layers.MaxPooling2D(name=f"{prefix}stage{stage}_pool")(x)
    x = layers.Flatten(name=f"{prefix}flatten")(x)
    x = layers.Dense(config.feature_units, use_bias=False, name=f"{prefix}embed")(x)
    x = layers.BatchNormalization(name=f"{prefix}embed_bn")(x)
    x = layers.ReLU(name=f"{prefix}embed_relu")(x)
    features = layers.Dropout(config.dropout, name=f"{prefix}embed_dropout")(x)
    digit = layers.Dense(NUM_DIGITS, activation="softmax", name=f"{prefix}digit")(features)
    return features, digit


def build_model(config):
    """Builds the uncompiled network.

    Inputs are raw: `image` (batch, 28, 28) with integer pixels 0..255 and
    `number` (batch,) integers 0..9 (the `contract`), of any numeric dtype:
    the inputs are float32 so that the model sees a caller's values uncast and
    refuses those outside the contract (`IntegerCheck`). Rescaling and the
    one-hot live inside.
    The CNN embedding of the image feeds the `digit` head, and, merged with the
    one-hot number, a hidden-layer MLP that learns the `sum` (0..18). With
    `config.members > 1`, `digit` averages the digit heads of that many
    networks (`member<i>_...` layers), which `training_view` exposes to their
    own losses.

    Args:
        config: a `Config`.

    Returns:
        A functional `keras.Model` with outputs `{"digit": (batch, 10),
        "sum": (batch, 19)}` of probabilities.
    """
    image = keras.Input(shape=IMAGE_SHAPE, dtype="float32", name="image")
    number = keras.Input(shape=(), dtype="float32", name="number")

    x = IntegerCheck("image", name="image_check")(image)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = layers.Reshape(IMAGE_SHAPE + (1,), name="add_channel")(x)
    if config.test_zoom != 1:
        x = TestTimeZoom(config.test_zoom, name="test_zoom")(x)
    if config.members == 1:
        features, digit = _network(x, config, "", config.seed)
    else:
        # A committee: each network reads the same image; their digit
        # probabilities are averaged (Ciresan et al. 2012; Deotte's 15 CNNs).
        features, digit = None, layers.Average(name="digit")([
            _network(x, config, f"member{m}_", config.seed + m * MEMBER_SEED_STRIDE)[1]
            for m in range(config.members)])

    one_hot = layers.CategoryEncoding(NUM_DIGITS, output_mode="one_hot",
                                      name="number_one_hot")(
        IntegerCheck("number", output_dtype="int32", name="number_check")(number))
    image_view = digit if config.sum_merge == "digit_probabilities" else features
    h = layers.Concatenate(name="merge")([image_view, one_hot])
    # Addition is not linear in [features, one-hot]: hidden layers are needed.
    for i, units in enumerate(config.sum_units):
        h = layers.Dense(units, activation="relu", name=f"sum_hidden{i}")(h)
    total = layers.Dense(NUM_SUMS, activation="softmax", name="sum")(h)

    return keras.Model(inputs=[image, number],
                       outputs={"digit": digit, "sum": total}, name="mnist_sum")


def member_digit_names(model):
    """Names of a committee's member digit heads (`member<i>_digit`); [] for one network."""
    return [layer.name for layer in model.layers if MEMBER_DIGIT.fullmatch(layer.name)]


def training_view(model):
    """The model with each committee member's digit head as an output too.

    The same layers and weights; the members' outputs let each member train
    on its own loss, which keeps them independent (a loss on their average
    alone lets them lean on each other). A single network is returned as it is.
    """
    names = member_digit_names(model)
    if not names:
        return model
    outputs = {key: model.get_layer(key).output for key in ("digit", "sum", *names)}
    return keras.Model(model.inputs, outputs, name=model.name)


def with_member_targets(dataset, model):
    """`dataset` of `(inputs, {"digit", "sum"})` with the digit also as each
    member's target, as a committee's `training_view` needs."""
    names = member_digit_names(model)
    if not names:
        return dataset
    return dataset.map(lambda x, y: (x, {**y, **{name: y["digit"] for name in names}}))


def inference_view(model):
    """The model with only its `digit` and `sum` outputs (undoes `training_view`)."""
    if not member_digit_names(model) or set(model.output_names) == {"digit", "sum"}:
        return model
    outputs = {key: model.get_layer(key).output for key in ("digit", "sum")}
    return keras.Model(model.inputs, outputs, name=model.name)


def compile_model(model, config, steps_per_epoch):
    """Compiles with the optimizer, a warm-up + cosine schedule, per-head losses.

    A committee (`config.members > 1`) is compiled as its `training_view`, which
    is returned: each member's digit head has its own loss, the averaged `digit`
    output only its accuracy metric.
    """
    total_steps = max(1, config.epochs * steps_per_epoch)
    warmup_steps = min(total_steps - 1, int(config.warmup_epochs * steps_per_epoch))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup_steps,
        warmup_target=config.learning_rate,
        warmup_steps=warmup_steps,
    )
    ema = ({"use_ema": True, "ema_momentum": config.ema_momentum}
           if config.ema_momentum else {})
    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True,
                                         weight_decay=config.weight_decay, **ema)
    else:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay,
                                           **ema)
    model = training_view(model)
    members = member_digit_names(model)
    digit_loss = _loss(NUM_DIGITS, config.label_smoothing)
    model.compile(
        optimizer=optimizer,
        loss={**({name: digit_loss for name in members} if members
                 else {"digit": digit_loss}),
              "sum": _loss(NUM_SUMS, config.label_smoothing)},
        # Logged as digit_accuracy and sum_accuracy (val_ prefixed on validation).
        metrics={"digit": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                 "sum": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]},
    )
    return model
