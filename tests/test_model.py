"""Tests of the two-input, two-output network."""

import dataclasses
import os
import warnings

import keras
import numpy as np
import pytest

from conftest import synthetic_digits
from mnist_sum_keras import data
from mnist_sum_keras.model import build_model, compile_model


@pytest.fixture
def model(tiny_config):
    return build_model(tiny_config)


def _inputs(count=6):
    images, _ = synthetic_digits(count)
    return images, np.arange(count, dtype=np.int32) % 10


def test_input_and_output_names_shapes_dtypes(model):
    assert [t.name for t in model.inputs] == ["image", "number"]
    assert model.inputs[0].shape == (None, 28, 28) and model.inputs[0].dtype == "uint8"
    assert model.inputs[1].shape == (None,) and model.inputs[1].dtype == "int32"
    assert set(model.output_names) == {"digit", "sum"}
    images, numbers = _inputs()
    out = model.predict([images, numbers], verbose=0)
    assert set(out) == {"digit", "sum"}
    assert out["digit"].shape == (6, 10) and out["sum"].shape == (6, 19)
    assert out["digit"].dtype == np.float32
    np.testing.assert_allclose(out["digit"].sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["sum"].sum(axis=1), 1.0, rtol=1e-5)


def test_predict_takes_list_or_dict_without_warnings(model):
    images, numbers = _inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_list = model.predict([images, numbers], verbose=0)
        as_dict = model.predict({"image": images, "number": numbers}, verbose=0)
    for key in ("digit", "sum"):
        np.testing.assert_allclose(as_list[key], as_dict[key], rtol=1e-6)


def test_augmentation_is_part_of_training_only(tiny_config):
    model = build_model(tiny_config)
    names = [layer.name for layer in model.layers]
    assert any(n.startswith("random_rotation") for n in names)
    images, numbers = _inputs()
    a = model([images, numbers], training=False)["digit"]
    b = model([images, numbers], training=False)["digit"]
    np.testing.assert_array_equal(a, b)
    plain = build_model(dataclasses.replace(tiny_config, max_shift=0, max_rotation=0,
                                            max_zoom=0))
    assert not any(layer.name.startswith("random_") for layer in plain.layers)


def test_sum_output_depends_on_number(model):
    images, _ = _inputs(1)
    a = model.predict([images, np.array([0], np.int32)], verbose=0)["sum"]
    b = model.predict([images, np.array([9], np.int32)], verbose=0)["sum"]
    assert not np.allclose(a, b)


def test_sum_head_has_hidden_layers_after_the_merge(model):
    # A linear head on [features, one-hot] cannot learn addition.
    hidden = [layer for layer in model.layers if layer.name.startswith("sum_hidden")]
    assert hidden and all(layer.activation is not None for layer in hidden)
    assert hidden[0].input is model.get_layer("merge").output
    assert model.get_layer("sum").input is hidden[-1].output
    merged = model.get_layer("merge").input
    assert model.get_layer("number_one_hot").output in merged


def test_keras_save_load_round_trip(model, tmp_path):
    images, numbers = _inputs()
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True: no Python from the file.
    before = model.predict([images, numbers], verbose=0)
    after = loaded.predict([images, numbers], verbose=0)
    for key in ("digit", "sum"):
        np.testing.assert_allclose(before[key], after[key], rtol=1e-6, atol=1e-7)


def test_smoke_fit_lowers_the_loss(tiny_config):
    # No augmentation: a shifted bar would land on another class's row.
    config = dataclasses.replace(tiny_config, epochs=4, max_shift=0, max_rotation=0,
                                 max_zoom=0)
    images, digits = synthetic_digits(320)
    ds = data.make_dataset(images, digits, batch_size=32, training=True, seed=0)
    model = compile_model(build_model(config), config, steps_per_epoch=10)
    history = model.fit(ds, epochs=config.epochs, verbose=0, shuffle=False)
    loss = history.history["loss"]
    assert loss[-1] < 0.8 * loss[0], loss
    assert {"digit_accuracy", "sum_accuracy"} <= set(history.history)
