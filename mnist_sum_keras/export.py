"""SavedModel export for TF Serving, in versioned folders written atomically."""

import os
import shutil
import uuid

import keras
import numpy as np
import tensorflow as tf

from mnist_sum_keras.config import IMAGE_SHAPE, MODEL_NAME, NUM_DIGITS

SIGNATURE_KEY = "serving_default"
# Where TF Serving looks for warm-up requests inside a version folder.
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# Batch sizes replayed at load time, so the first real requests are not slow.
WARMUP_BATCH_SIZES = (1, 100)


def existing_versions(base_dir):
    """Integer version folders under `base_dir` (what TF Serving would load)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(base_dir, name)))


def next_version(base_dir):
    """One more than the highest version present, 1 for an empty folder."""
    return max(existing_versions(base_dir), default=0) + 1


def _assert_items(tensor, name, shown, per_item):
    """Run-time check that every batch item holds `per_item` values.

    Serving does not enforce the signature's shapes, and a static-shape check
    would be folded away in the traced graph, so count the elements instead:
    [batch, 28, 28] and its layout twin [batch, 28, 28, 1] pass; [batch, 28,
    28, 3] or [batch, 28, 27] do not.
    """
    shape = tf.shape(tensor)
    ok = tf.equal(tf.size(tensor), shape[0] * per_item)
    return tf.debugging.Assert(ok, [f"{name} must have shape {shown}. Received shape:",
                                    shape])


def _serving_function(model):
    @tf.function(input_signature=[
        tf.TensorSpec([None, *IMAGE_SHAPE], tf.uint8, name="image"),
        tf.TensorSpec([None], tf.int32, name="number"),
    ])
    def serve(image, number):
        # A one-hot of 10 is all zeros and would give a confident wrong sum:
        # refuse it (InvalidArgument, which TF Serving turns into HTTP 400).
        checks = [
            _assert_items(image, "image", "[batch, 28, 28]", int(np.prod(IMAGE_SHAPE))),
            _assert_items(number, "number", "[batch]", 1),
            tf.debugging.assert_positive(
                tf.shape(image)[0], message="image batch is empty"),
            tf.debugging.assert_equal(
                tf.shape(image)[0], tf.shape(number)[0],
                message="image and number must have the same batch size"),
            tf.debugging.assert_greater_equal(
                number, 0, message="number must be in 0..9"),
            tf.debugging.assert_less(
                number, NUM_DIGITS, message="number must be in 0..9"),
        ]
        with tf.control_dependencies(checks):
            probs = model([tf.reshape(image, [-1, *IMAGE_SHAPE]),
                           tf.reshape(number, [-1])], training=False)
        return {
            "digit": tf.argmax(probs["digit"], axis=-1),
            "sum": tf.argmax(probs["sum"], axis=-1),
            "digit_probabilities": probs["digit"],
            "sum_probabilities": probs["sum"],
        }
    return serve


def write_warmup_requests(path, batch_sizes=WARMUP_BATCH_SIZES):
    """Writes TF Serving's warm-up file: a TFRecord of `PredictionLog`s.

    Args:
        path: the file to write (`<version>/assets.extra/tf_serving_warmup_requests`).
        batch_sizes: one request per batch size, of blank images and numbers 0..9.
    """
    # Imported here: only exporting needs the TF Serving protos.
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for size in batch_sizes:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                name=MODEL_NAME, signature_name=SIGNATURE_KEY))
            request.inputs["image"].CopyFrom(tf.make_tensor_proto(
                np.zeros((size, *IMAGE_SHAPE), np.uint8)))
            request.inputs["number"].CopyFrom(tf.make_tensor_proto(
                np.arange(size, dtype=np.int32) % NUM_DIGITS))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


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
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SIGNATURE_KEY, _serving_function(model))
        archive.write_out(tmp, verbose=False)
        write_warmup_requests(os.path.join(tmp, WARMUP_FILE))
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
