"""Tests of the two-input, two-output network."""

import dataclasses
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import synthetic_digits
from mnist_sum_keras import data
from mnist_sum_keras.config import Config
from mnist_sum_keras.model import FusedBatchNormalization, build_model, compile_model


@pytest.fixture
def model(tiny_config):
    return build_model(tiny_config)


def _inputs(count=6):
    images, _ = synthetic_digits(count)
    return images, np.arange(count, dtype=np.int32) % 10


def test_input_and_output_names_shapes_dtypes(model):
    assert [t.name for t in model.inputs] == ["image", "number"]
    # float32, so the IntegerCheck layers see callers' values uncast.
    assert model.inputs[0].shape == (None, 28, 28) and model.inputs[0].dtype == "float32"
    assert model.inputs[1].shape == (None,) and model.inputs[1].dtype == "float32"
    assert [type(model.get_layer(n)).__name__ for n in ("image_check", "number_check")] == [
        "IntegerCheck", "IntegerCheck"]
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
    assert "distort" in names
    images, numbers = _inputs()
    a = model([images, numbers], training=False)["digit"]
    b = model([images, numbers], training=False)["digit"]
    np.testing.assert_array_equal(a, b)
    c = model([images, numbers], training=True)["digit"]
    assert not np.allclose(a, c)
    plain = build_model(dataclasses.replace(tiny_config, max_shift=0, max_rotation=0,
                                            max_zoom=0, max_aspect=0, max_shear=0,
                                            elastic_alpha=0))
    assert "distort" not in [layer.name for layer in plain.layers]


def test_test_time_zoom_changes_inference_only(tiny_config):
    images, numbers = _inputs()
    plain = build_model(dataclasses.replace(tiny_config, test_zoom=1.0))
    zoomed = build_model(dataclasses.replace(tiny_config, test_zoom=1.2))
    assert "test_zoom" not in [layer.name for layer in plain.layers]
    assert zoomed.get_layer("test_zoom").zoom == 1.2
    zoomed.set_weights(plain.get_weights())  # The zoom has no weights.
    a = plain([images, numbers], training=False)["digit"]
    b = zoomed([images, numbers], training=False)["digit"]
    assert not np.allclose(a, b)


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


@pytest.mark.large
def test_keras_file_loads_in_a_fresh_process_after_importing_the_model_module(model, tmp_path):
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    code = ("import keras, mnist_sum_keras.model, sys; "
            "m = keras.saving.load_model(sys.argv[1]); "
            "print(type(m.get_layer('stage0a_bn')).__name__)")
    result = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "FusedBatchNormalization"


def test_smoke_fit_lowers_the_loss(tiny_config):
    # Seeded: unseeded, a 20% drop of the total loss failed by chance (4.68 -> 3.84).
    keras.utils.set_random_seed(0)
    # No augmentation: a shifted bar would land on another class's row.
    config = dataclasses.replace(tiny_config, epochs=4, max_shift=0, max_rotation=0,
                                 max_zoom=0, max_aspect=0, max_shear=0, elastic_alpha=0)
    images, digits = synthetic_digits(320)
    ds = data.make_dataset(images, digits, batch_size=32, training=True, seed=0)
    model = compile_model(build_model(config), config, steps_per_epoch=10)
    history = model.fit(ds, epochs=config.epochs, verbose=0, shuffle=False)
    # Seed 0 on this machine: digit loss 1.82 -> 0.82, total 4.74 -> 3.61; the
    # digit head learns the bars fast, the sum head needs far more steps.
    digit_loss, loss = history.history["digit_loss"], history.history["loss"]
    assert digit_loss[-1] < 0.6 * digit_loss[0], digit_loss
    assert loss[-1] < 0.9 * loss[0], loss
    assert {"digit_accuracy", "sum_accuracy"} <= set(history.history)


def _twin_batch_norms(shape):
    rng = np.random.default_rng(0)
    keras_bn, fused_bn = keras.layers.BatchNormalization(), FusedBatchNormalization()
    keras_bn.build(shape)
    fused_bn.build(shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in keras_bn.get_weights()]
    weights[3] = np.abs(weights[3]) + 0.5  # a moving variance is positive
    keras_bn.set_weights(weights)
    fused_bn.set_weights(weights)
    return keras_bn, fused_bn


def test_fused_batch_norm_matches_keras_batch_norm():
    x = np.random.default_rng(1).normal(2.0, 3.0, (16, 7, 7, 8)).astype("float32")
    keras_bn, fused_bn = _twin_batch_norms(x.shape)
    np.testing.assert_allclose(fused_bn(x, training=True), keras_bn(x, training=True),
                               atol=1e-5)
    gamma, beta, mean, variance = zip(keras_bn.get_weights(), fused_bn.get_weights())
    np.testing.assert_allclose(*mean, atol=1e-6)
    # The fused op hands the unbiased batch variance (n / (n - 1)) to the moving one.
    n = 16 * 7 * 7
    batch_variance = x.reshape(-1, 8).var(axis=0)
    np.testing.assert_allclose(variance[1] - variance[0],
                               0.01 * batch_variance / (n - 1), rtol=1e-3)
    # Inference is the parent's own path.
    keras_bn.set_weights(fused_bn.get_weights())
    np.testing.assert_array_equal(fused_bn(x, training=False), keras_bn(x, training=False))


def test_fused_batch_norm_runs_one_fused_op_in_training():
    _, fused_bn = _twin_batch_norms((4, 5, 5, 3))
    spec = tf.TensorSpec((4, 5, 5, 3), tf.float32)
    def ops_of(training):
        return {op.type for op in tf.function(
            lambda x: fused_bn(x, training=training)).get_concrete_function(spec).graph
            .get_operations()}
    assert "FusedBatchNormV3" in ops_of(True)
    assert "FusedBatchNormV3" not in ops_of(False)


@pytest.mark.parametrize("fused", [True, False])
def test_model_uses_the_batch_norm_the_config_names(tiny_config, fused):
    model = build_model(dataclasses.replace(tiny_config, fused_batch_norm=fused))
    conv_norms = [layer for layer in model.layers
                  if layer.name.endswith("_bn") and layer.name != "embed_bn"]
    assert len(conv_norms) == 2 * len(tiny_config.conv_filters)
    assert all(isinstance(layer, FusedBatchNormalization) == fused for layer in conv_norms)


def test_space_to_depth_stem_moves_each_2x2_block_into_channels(tiny_config):
    model = build_model(dataclasses.replace(tiny_config, stem="space_to_depth"))
    stem = keras.Model(model.inputs[0], model.get_layer("stem_merge").output)
    images = (np.arange(2 * 28 * 28) % 251).reshape(2, 28, 28).astype("float32")
    blocks = stem.predict(images, verbose=0) * 255  # (2, 14, 14, 4), rescaled back.
    expected = images.reshape(2, 14, 2, 14, 2).transpose(0, 1, 3, 2, 4).reshape(2, 14, 14, 4)
    np.testing.assert_allclose(blocks, expected, rtol=1e-5)
    assert model.get_layer("stage0a_conv").input.shape == (None, 14, 14, 4)
    full = build_model(dataclasses.replace(tiny_config, stem="full_resolution"))
    assert full.get_layer("stage0a_conv").input.shape == (None, 28, 28, 1)
    assert "stem_merge" not in [layer.name for layer in full.layers]


@pytest.mark.parametrize("stem,filters", [("space_to_depth", (4, 8, 16, 32)),
                                          ("full_resolution", (4, 8, 16, 32, 64)),
                                          ("space_to_depth", ())])
def test_config_refuses_more_stages_than_the_image_has_pixels_for(stem, filters):
    with pytest.raises(ValueError, match=f"conv_filters must hold 1 to .* stages with "
                                         f"stem='{stem}'"):
        Config(stem=stem, conv_filters=filters)


def test_smoothed_sparse_crossentropy_is_crossentropy_against_smoothed_targets(tmp_path):
    from mnist_sum_keras.model import SmoothedSparseCrossentropy

    labels = np.array([1, 0])
    probs = np.array([[0.1, 0.8, 0.1], [0.7, 0.2, 0.1]], "float32")
    targets = np.array([[0.1, 0.8, 0.1], [0.8, 0.1, 0.1]])  # 0.3 spread over 3 classes.
    expected = np.mean(-(targets * np.log(probs)).sum(axis=1))
    np.testing.assert_allclose(SmoothedSparseCrossentropy(3, 0.3)(labels, probs), expected,
                               rtol=1e-6)
    np.testing.assert_allclose(SmoothedSparseCrossentropy(3, 0.0)(labels, probs),
                               keras.losses.SparseCategoricalCrossentropy()(labels, probs),
                               rtol=1e-6)


def test_label_smoothing_compiles_into_both_heads_and_survives_saving(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, label_smoothing=0.1)
    model = compile_model(build_model(config), config, steps_per_epoch=10)
    model.optimizer.build(model.trainable_variables)  # As after training.
    path = tmp_path / "smoothed.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    losses = loaded.loss
    assert {key: (type(loss).__name__, loss.num_classes, loss.label_smoothing)
            for key, loss in losses.items()} == {
        "digit": ("SmoothedSparseCrossentropy", 10, 0.1),
        "sum": ("SmoothedSparseCrossentropy", 19, 0.1)}
    plain = compile_model(build_model(tiny_config), tiny_config, steps_per_epoch=10)
    assert plain.loss == {"digit": "sparse_categorical_crossentropy",
                          "sum": "sparse_categorical_crossentropy"}


@pytest.mark.parametrize("stage_blocks,convs", [
    ((2,), ["stage0a", "stage0b", "stage1a", "stage1b"]),
    ((1, 2), ["stage0a", "stage1a", "stage1b"]),
    ((3, 1), ["stage0a", "stage0b", "stage0c", "stage1a"]),
])
def test_stage_blocks_sets_the_conv_blocks_of_each_stage(tiny_config, stage_blocks, convs):
    model = build_model(dataclasses.replace(tiny_config, stage_blocks=stage_blocks))
    assert [layer.name[:-len("_conv")] for layer in model.layers
            if layer.name.endswith("_conv")] == convs


def test_a_committee_averages_its_members_digit_heads(tiny_config):
    from mnist_sum_keras.model import member_digit_names, training_view

    model = build_model(dataclasses.replace(tiny_config, members=3))
    assert model.output_names == ["digit", "sum"] or set(model.output_names) == {"digit", "sum"}
    names = member_digit_names(model)
    assert names == ["member0_digit", "member1_digit", "member2_digit"]
    # Each member has its own trunk, initialisation and distortion draw.
    a, b = (model.get_layer(f"member{m}_stage0a_conv").get_weights()[0] for m in (0, 1))
    assert a.shape == b.shape and not np.allclose(a, b)
    assert (model.get_layer("member0_distort").seed
            != model.get_layer("member1_distort").seed)
    images, numbers = _inputs()
    out = training_view(model).predict([images, numbers], verbose=0)
    np.testing.assert_allclose(out["digit"], np.mean([out[n] for n in names], axis=0),
                               atol=1e-6)
    # One network keeps the layer names of earlier releases.
    single = build_model(tiny_config)
    assert member_digit_names(single) == [] and single.get_layer("stage0a_conv")


@pytest.mark.large  # Trains, saves and exports a committee.
def test_a_committee_trains_each_member_on_its_own_loss_and_releases_two_outputs(
        tiny_config, tiny_datasets, tmp_path):
    from mnist_sum_keras.export import export_saved_model
    from mnist_sum_keras.train import train

    config = dataclasses.replace(tiny_config, members=2, epochs=1)
    model, history = train(config, str(tmp_path / "work"), datasets=tiny_datasets, verbose=0)
    assert {"member0_digit_loss", "member1_digit_loss", "val_member1_digit_loss",
            "val_digit_accuracy", "sum_loss"} <= set(history.history)
    assert "digit_loss" not in history.history  # the average has a metric, no loss
    assert set(model.output_names) == {"digit", "sum"}
    images, numbers = _inputs()
    before = model.predict([images, numbers], verbose=0)
    path = str(tmp_path / "committee.keras")
    model.save(path)
    again = keras.saving.load_model(path).predict([images, numbers], verbose=0)
    np.testing.assert_allclose(again["digit"], before["digit"], atol=1e-6)
    served = tf.saved_model.load(export_saved_model(model, str(tmp_path / "mnist_sum")))
    out = served.signatures["serving_default"](image=tf.constant(images),
                                               number=tf.constant(numbers))
    np.testing.assert_allclose(out["digit_probabilities"], before["digit"], atol=1e-5)


@pytest.mark.parametrize("changes,message", [
    ({"members": 0}, "members must be a positive integer"),
    ({"members": 2, "sum_merge": "features"}, "members > 1 needs sum_merge"),
])
def test_config_refuses_bad_committees(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(Config(), **changes)
