"""SavedModel export for TF Serving, in versioned folders written atomically.

Two signatures: `serving_default` (raw 28x28 pixels) and `predict_image`
(encoded image bytes, preprocessed in the graph), both checked against the
`contract`.
"""

import os
import re
import shutil
import uuid

import numpy as np
import tensorflow as tf

from mnist_sum_keras import contract
from mnist_sum_keras.config import IMAGE_SHAPE, MODEL_NAME, NUM_DIGITS, NUM_SUMS
from mnist_sum_keras.frontend import read_images

# Where TF Serving looks for warm-up requests inside a version folder.
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Batch sizes replayed at load time, so the first real requests are not slow.
WARMUP_BATCH_SIZES = (1, 100)
IMAGE_SPEC = tf.TensorSpec([None, *IMAGE_SHAPE], tf.uint8, name="image")
NUMBER_SPEC = tf.TensorSpec([None], tf.int32, name="number")
IMAGE_BYTES_SPEC = tf.TensorSpec([None], tf.string, name="image_bytes")
OUTPUT_SPECS = {"digit": tf.TensorSpec([None], tf.int64),
                "sum": tf.TensorSpec([None], tf.int64),
                "digit_probabilities": tf.TensorSpec([None, NUM_DIGITS], tf.float32),
                "sum_probabilities": tf.TensorSpec([None, NUM_SUMS], tf.float32)}
# `predict_image` also answers the 28x28 picture the model read in each image,
# so that a person can see why an answer is wrong, and whether a digit was
# found in it: a picture without one (blank paper, noise) gets `found` false,
# its `reason` in words, digit and sum -1 and all-zero probabilities, while
# the batch's other pictures are answered.
IMAGE_OUTPUT_SPECS = {**OUTPUT_SPECS, "image": tf.TensorSpec([None, *IMAGE_SHAPE], tf.uint8),
                      "found": tf.TensorSpec([None], tf.bool),
                      "reason": tf.TensorSpec([None], tf.string)}
# The digit and sum of a picture with no digit.
NO_ANSWER = -1


def existing_versions(base_dir):
    """Integer version folders under `base_dir` (what TF Serving would load)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(base_dir, name)))


def latest_version(base_dir):
    """The highest version folder under `base_dir` (what TF Serving serves), or None."""
    versions = existing_versions(base_dir)
    return os.path.join(base_dir, str(versions[-1])) if versions else None


def next_version(base_dir):
    """One more than the highest version present, 1 for an empty folder."""
    return max(existing_versions(base_dir), default=0) + 1


def _answer(model, image, number):
    # The model itself refuses numbers outside 0..9 (its IntegerCheck layer).
    probs = model([image, number], training=False)
    return {
        "digit": tf.argmax(probs["digit"], axis=-1),
        "sum": tf.argmax(probs["sum"], axis=-1),
        "digit_probabilities": probs["digit"],
        "sum_probabilities": probs["sum"],
    }


def _serving_functions(model):
    """The SavedModel's signatures: `{name: tf.function}` (`contract` keys)."""

    @tf.function(input_signature=[IMAGE_SPEC, NUMBER_SPEC])
    def serve(image, number):
        # Serving does not enforce the declared shapes: check what was sent.
        return contract.guarded(image, "image", number, IMAGE_SHAPE,
                                contract.IMAGE_SHAPE_RULE,
                                lambda: _answer(model, image, number), OUTPUT_SPECS)

    def read_and_answer(image_bytes, number):
        images, found, reason = read_images(image_bytes)
        answers = _answer(model, images, number)
        for name in ("digit", "sum"):
            answers[name] = tf.where(found, answers[name], tf.constant(NO_ANSWER, tf.int64))
        for name in ("digit_probabilities", "sum_probabilities"):
            answers[name] = tf.where(found[:, None], answers[name], 0.0)
        return {**answers, "image": images, "found": found, "reason": reason}

    @tf.function(input_signature=[IMAGE_BYTES_SPEC, NUMBER_SPEC])
    def predict_image(image_bytes, number):
        return contract.guarded(
            image_bytes, "image_bytes", number, (), contract.IMAGE_BYTES_SHAPE_RULE,
            lambda: read_and_answer(image_bytes, number), IMAGE_OUTPUT_SPECS)

    return {contract.SIGNATURE_KEY: serve, contract.PREDICT_IMAGE_KEY: predict_image}


def _warmup_inputs(size):
    """Warm-up inputs of each signature: blank images (a bar in the encoded
    ones, which must not be blank) and numbers 0..9."""
    numbers = np.arange(size, dtype=np.int32) % NUM_DIGITS
    bar = np.zeros((*IMAGE_SHAPE, 1), np.uint8)
    bar[4:24, 12:16] = 255
    png = tf.io.encode_png(bar).numpy()
    return {
        contract.SIGNATURE_KEY: {"image": np.zeros((size, *IMAGE_SHAPE), np.uint8),
                                 "number": numbers},
        contract.PREDICT_IMAGE_KEY: {"image_bytes": np.array([png] * size, object),
                                     "number": numbers},
    }


def write_warmup_requests(path, batch_sizes=WARMUP_BATCH_SIZES):
    """Writes TF Serving's warm-up file: a TFRecord of `PredictionLog`s.

    Args:
        path: the file to write (`<version>/assets.extra/tf_serving_warmup_requests`).
        batch_sizes: one request per batch size and signature (`_warmup_inputs`).
    """
    # Imported here: only exporting needs the TF Serving protos.
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for size in batch_sizes:
            for signature, inputs in _warmup_inputs(size).items():
                request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                    name=MODEL_NAME, signature_name=signature))
                for name, value in inputs.items():
                    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(log.SerializeToString())


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Alive, another user's.
        return True
    return True


def _remove_leftovers(base_dir, version):
    """Removes what releases cut short by a kill left: `v<version>.*` entries
    without their version folder, and staging folders of dead processes."""
    for name in os.listdir(base_dir):
        path = os.path.join(base_dir, name)
        match = _STAGING.fullmatch(name)
        leftover = (name.startswith(f"v{version}.") or
                    (match is not None and not _pid_alive(int(match["pid"]))))
        if leftover:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


_STAGING = re.compile(r"\.release-(?P<version>\d+)-(?P<pid>\d+)-[0-9a-f]{32}")


def release(model, base_dir, files, version=None):
    """Publishes `model` as SavedModel version `<version>/` with its `v<version>.*` files.

    All or nothing: everything is written into a hidden staging folder
    (`.release-<version>-<pid>-<random>`, which TF Serving and
    `existing_versions` ignore), then the `v<version>.*` files are renamed
    into `base_dir` and the version folder last, so a version that a server
    can load always has all its files. A release that fails removes what it
    wrote; one killed outright leaves at most a staging folder and, in the
    instant between the renames, `v<version>.*` files without a version
    folder, which the next release removes.

    Args:
        model: the trained Keras model.
        base_dir: the model's base path (e.g. `saved_models/mnist_sum`).
        files: `{suffix: write}`: `write(path)` makes the file or folder
            `v<version><suffix>` at `path`, e.g. `{".keras": model.save}`.
        version: integer version; default one more than the highest present.

    Returns:
        The path of the new version folder.
    """
    os.makedirs(base_dir, exist_ok=True)
    version = next_version(base_dir) if version is None else int(version)
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"SavedModel version already exists: {final}")
    _remove_leftovers(base_dir, version)
    staging = os.path.join(base_dir, f".release-{version}-{os.getpid()}-{uuid.uuid4().hex}")
    names = [f"v{version}{suffix}" for suffix in files]
    moved = []
    try:
        export_saved_model(model, staging, version=version)
        for name, write in zip(names, files.values()):
            write(os.path.join(staging, name))
        if os.path.exists(final):  # Another process released this version meanwhile.
            raise FileExistsError(f"SavedModel version already exists: {final}")
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(base_dir, name))
            moved.append(name)
        # The version becomes visible last, in one rename.
        os.rename(os.path.join(staging, str(version)), final)
    except BaseException:
        for name in moved:
            path = os.path.join(base_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _save_signatures(model, path):
    """Writes a SavedModel of the serving signatures alone, traced once.

    Keras' `ExportArchive` also sets each endpoint as an attribute of the saved
    object, which `tf.saved_model.save` traces again in its save context: the
    front end was traced and stored twice (a 3.5 MB `saved_model.pb` instead of
    1.7 MB, and an export and a load each about twice as slow). TF Serving reads
    only the signatures, and `tf.saved_model.load(path).signatures[...]` is how
    Python reads them too.
    """
    concrete = {name: function.get_concrete_function()
                for name, function in _serving_functions(model).items()}
    root = tf.Module()
    # The variables the signatures read (the model's weights), each once.
    root.model_variables = list({id(v): v for function in concrete.values()
                                 for v in function.variables}.values())
    tf.saved_model.save(root, path, signatures=concrete)


def export_saved_model(model, base_dir, version=None):
    """Exports `model` as `base_dir/<version>/` for TF Serving.

    The SavedModel is written to a hidden temporary folder and renamed into
    place, so a crash never leaves a half-written version that a server would
    load, and an existing version is never overwritten.

    Args:
        model: the trained Keras model.
        base_dir: the model's base path (e.g. `saved_models/mnist_sum`).
        version: integer version; default one more than the highest present.

    Returns:
        The path of the new version folder.
    """
    version = next_version(base_dir) if version is None else int(version)
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"SavedModel version already exists: {final}")
    os.makedirs(base_dir, exist_ok=True)
    tmp = os.path.join(base_dir, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        _save_signatures(model, tmp)
        write_warmup_requests(os.path.join(tmp, WARMUP_FILE))
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
