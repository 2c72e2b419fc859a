"""Tests of the SavedModel export for TF Serving."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import RELEASED, synthetic_digits
from mnist_sum_keras import contract, export
from mnist_sum_keras.config import Config
from mnist_sum_keras.model import build_model


def _small_model():
    return build_model(dataclasses.replace(
        Config(), conv_filters=(4, 8), feature_units=16, sum_units=(32,)))


@pytest.fixture(scope="module")
def exported(tiny_served, tiny_signatures):
    """`(model, version folder, {key: signature})`: the session's tiny export."""
    model, _, path = tiny_served
    return model, path, tiny_signatures


def _serve(path, key=contract.SIGNATURE_KEY):
    return tf.saved_model.load(path).signatures[key]


def test_versions_count_up_and_never_overwrite(tiny_served, tmp_path):
    model = tiny_served[0]
    base = str(tmp_path / "mnist_sum")
    path = export.export_saved_model(model, base)
    assert path == os.path.join(base, "1")
    second = export.export_saved_model(model, base)
    assert second == os.path.join(base, "2")
    assert export.existing_versions(base) == [1, 2]
    assert export.latest_version(base) == second
    with pytest.raises(FileExistsError):
        export.export_saved_model(model, base, version=1)
    assert not [n for n in os.listdir(base) if n.startswith(".tmp")]


OUTPUT_DTYPES = {"digit": tf.int64, "sum": tf.int64,
                 "digit_probabilities": tf.float32, "sum_probabilities": tf.float32}


@pytest.mark.parametrize("key,inputs,outputs", [
    (contract.SIGNATURE_KEY, {"image": (tf.uint8, [None, 28, 28]),
                              "number": (tf.int32, [None])}, OUTPUT_DTYPES),
    # predict_image also answers the 28x28 picture the model read.
    (contract.PREDICT_IMAGE_KEY, {"image_bytes": (tf.string, [None]),
                                  "number": (tf.int32, [None])},
     {**OUTPUT_DTYPES, "image": tf.uint8, "found": tf.bool, "reason": tf.string}),
])
def test_signature_names_dtypes_shapes(exported, key, inputs, outputs):
    serve = exported[2][key]
    spec = serve.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in spec.items()} == inputs
    assert {k: v.dtype for k, v in serve.structured_outputs.items()} == outputs


def test_served_outputs_equal_keras_model(exported):
    model, _, signatures = exported
    images, _ = synthetic_digits(8)
    numbers = np.arange(8, dtype=np.int32)
    served = signatures[contract.SIGNATURE_KEY](image=tf.constant(images),
                                                number=tf.constant(numbers))
    expected = model.predict([images, numbers], verbose=0)
    np.testing.assert_allclose(served["digit_probabilities"], expected["digit"], atol=1e-5)
    np.testing.assert_allclose(served["sum_probabilities"], expected["sum"], atol=1e-5)
    np.testing.assert_array_equal(served["digit"], np.argmax(expected["digit"], -1))
    np.testing.assert_array_equal(served["sum"], np.argmax(served["sum_probabilities"], -1))


def test_predict_image_equals_serving_default_on_the_preprocessed_images(exported):
    from mnist_sum_keras.frontend import preprocess

    _, _, signatures = exported
    images, _ = synthetic_digits(5)
    pngs = [tf.io.encode_png(im[..., None]).numpy() for im in images]
    numbers = tf.constant([1, 3, 5, 7, 9], tf.int32)
    from_bytes = signatures[contract.PREDICT_IMAGE_KEY](image_bytes=tf.constant(pngs),
                                                        number=numbers)
    preprocessed = np.stack([preprocess(b) for b in pngs])
    from_pixels = signatures[contract.SIGNATURE_KEY](image=tf.constant(preprocessed),
                                                     number=numbers)
    for key in OUTPUT_DTYPES:
        np.testing.assert_allclose(from_bytes[key], from_pixels[key], atol=1e-6)
    # The picture it answers is the one it read.
    np.testing.assert_array_equal(from_bytes["image"], preprocessed)


def test_failed_export_leaves_no_version(tmp_path, monkeypatch):
    base = str(tmp_path / "mnist_sum")

    def crash(obj, export_dir, **kwargs):
        # Dies half-way: part of the SavedModel is on disk.
        os.makedirs(export_dir)
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_saved_model(_small_model(), base)
    assert export.existing_versions(base) == []
    assert export.latest_version(base) is None
    assert os.listdir(base) == []



def test_warmup_file_parses_and_replays(exported):
    from tensorflow_serving.apis import prediction_log_pb2
    _, path, signatures = exported
    records = list(tf.data.TFRecordDataset(os.path.join(path, export.WARMUP_FILE)))
    # One request per batch size and signature: both are warm when serving starts.
    expected = [(size, key) for size in export.WARMUP_BATCH_SIZES
                for key in (contract.SIGNATURE_KEY, contract.PREDICT_IMAGE_KEY)]
    assert len(records) == len(expected)
    for record, (size, key) in zip(records, expected):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == key
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        assert all(len(v) == size for v in inputs.values())
        out = signatures[key](**{k: tf.constant(v) for k, v in inputs.items()})
        assert out["sum"].shape == (size,)


# TensorFlow installs saved_model_cli beside the interpreter that runs the tests,
# which need not be on PATH (a virtualenv's python run without activating it).
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


@pytest.mark.large
def test_saved_model_cli_show_and_run(exported, tmp_path):
    _, path, _ = exported
    show = subprocess.run([SAVED_MODEL_CLI, "show", "--dir", path, "--all"],
                          capture_output=True, text=True, timeout=300)
    assert show.returncode == 0, show.stderr
    assert "signature_def['serving_default']" in show.stdout
    for name in ("image", "number", "digit", "sum", "digit_probabilities",
                 "sum_probabilities"):
        assert f"['{name}']" in show.stdout
    np.save(tmp_path / "image.npy", np.zeros((2, 28, 28), np.uint8))
    np.save(tmp_path / "number.npy", np.array([3, 4], np.int32))
    run = subprocess.run(
        [SAVED_MODEL_CLI, "run", "--dir", path, "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs",
         f"image={tmp_path / 'image.npy'};number={tmp_path / 'number.npy'}"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "sum_probabilities" in run.stdout
    # predict_image through the C API as TF Serving runs it: a batch with a blank picture.
    bar = np.full((40, 40, 1), 255, np.uint8)
    bar[8:32, 18:22] = 0
    pictures = [tf.io.encode_png(bar).numpy(), tf.io.encode_png(np.full_like(bar, 255)).numpy()]
    np.save(tmp_path / "bytes.npy", np.array(pictures, object), allow_pickle=True)
    run = subprocess.run(
        [SAVED_MODEL_CLI, "run", "--dir", path, "--tag_set", "serve",
         "--signature_def", contract.PREDICT_IMAGE_KEY, "--inputs",
         f"image_bytes={tmp_path / 'bytes.npy'};number={tmp_path / 'number.npy'}"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    found = run.stdout.split("Result for output key found:")[1].split("Result")[0]
    assert found.split() == ["[", "True", "False]"] or found.split() == ["[True", "False]"]
    assert contract.NO_DIGIT_WORDS["blank"] in run.stdout


def test_the_repository_releases_the_default_model_once():
    # Any change to the default training retrains the release in the same change.
    import json

    import keras

    from mnist_sum_keras.train import weights_digest

    versions = export.existing_versions(RELEASED)
    assert len(versions) == 1, f"only the current release belongs in {RELEASED}: {versions}"
    stem = os.path.join(RELEASED, f"v{versions[0]}")
    for suffix in (".keras", ".config.json", ".history.csv", ".metrics.json"):
        assert os.path.isfile(stem + suffix), stem + suffix
    assert Config.from_json(stem + ".config.json") == Config()
    with open(stem + ".metrics.json") as f:
        metrics = json.load(f)
    assert metrics["version"] == versions[0]
    model = keras.saving.load_model(stem + ".keras")
    assert weights_digest(model) == metrics["weights_sha256"]


def test_export_script_releases_the_saved_model_and_keras_file_together(tmp_path):
    from conftest import call_main
    from mnist_sum_keras.cli import export as export_cli

    config = dataclasses.replace(Config(), conv_filters=(4, 8), feature_units=16,
                                 sum_units=(32,))
    model = build_model(config)
    model.save(tmp_path / "v3.keras")
    config.to_json(tmp_path / "v3.config.json")
    out = tmp_path / "out"
    code, stdout, err = call_main(export_cli.main, tmp_path / "v3.keras", "--output-dir", out)
    assert code == 0, err
    trained, rebuilt = (line.split()[-1] for line in stdout.splitlines()[:2])
    assert trained == rebuilt
    assert sorted(os.listdir(out)) == ["1", "v1.keras"]
    images, _ = synthetic_digits(3)
    numbers = np.array([0, 5, 9], np.int32)
    served = _serve(str(out / "1"))(image=tf.constant(images), number=tf.constant(numbers))
    np.testing.assert_allclose(served["sum_probabilities"],
                               model.predict([images, numbers], verbose=0)["sum"], atol=1e-6)
    # An existing version is refused and nothing is written.
    code, _, err = call_main(export_cli.main, tmp_path / "v3.keras", "--output-dir", out,
                             "--version", "1")
    assert code == 2 and "version already exists" in err and "Traceback" not in err
    assert sorted(os.listdir(out)) == ["1", "v1.keras"]
