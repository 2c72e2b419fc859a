"""Training: train(config, work_dir) -> (model, history), and the full run."""

import functools
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf

from mnist_sum_keras import data, multi_worker_shim, run_folder
from mnist_sum_keras.config import MODEL_NAME
from mnist_sum_keras.distribute import is_chief, replica_mean_moving_statistics
from mnist_sum_keras.evaluate import evaluate
from mnist_sum_keras.export import next_version, release
from mnist_sum_keras.model import build_model, compile_model, inference_view, with_member_targets
from mnist_sum_keras.run_folder import run_identity

# One file per improvement, never overwritten: a run killed while saving
# leaves the previous best checkpoint intact.
BEST_CHECKPOINT = "best-{epoch:03d}.keras"
HISTORY_CSV = "history.csv"
TENSORBOARD_LOGS = "logs"


def load_datasets(config):
    """MNIST arrays split as `{"train", "validation", "test"}: (images, digits)`."""
    (x, y), test = data.load_mnist(config.data_path)
    train, validation = data.split_validation(x, y, config.validation_size)
    return {"train": train, "validation": validation, "test": test}


def compiled_model(config, strategy, steps_per_epoch):
    """`build_model(config)`, compiled, ready to `fit` under `strategy`.

    Built in the strategy's scope with batch-norm statistics averaged over
    replicas, and patched by `multi_worker_shim` (only under
    MultiWorkerMirroredStrategy).
    """
    with strategy.scope(), replica_mean_moving_statistics():
        model = compile_model(build_model(config), config, steps_per_epoch)
    multi_worker_shim.apply(model, strategy)
    return model


def train(config, work_dir, datasets=None, verbose="auto", strategy=None, callbacks=(),
          restart=False):
    """Trains a fresh model; an interrupted call resumes when called again.

    Args:
        config: a `Config`.
        work_dir: the run's training folder: its identity, the
            best-on-validation checkpoints, the CSV history and the
            `BackupAndRestore` state (`run_folder`). Calling again with the
            same folder, config and data after an interruption resumes from
            the last finished epoch; a different run is refused.
        datasets: `{"train": (images, digits), "validation": (images, digits)}`
            to use instead of MNIST (tests inject tiny data here).
        verbose: Keras `fit` verbosity ("auto", 0, 1 or 2).
        strategy: a `tf.distribute` strategy (see `distribute.make_strategy`);
            None trains on one device. `config.batch_size` is per replica.
        callbacks: more Keras callbacks for `fit` (e.g. a benchmark's timer),
            run after the package's own.
        restart: discard another run's state in `work_dir` instead of refusing.

    Returns:
        `(model, history)`: the model restored to its best validation epoch
        and the `keras.callbacks.History` of this call.

    Raises:
        run_folder.RunFolderError: `work_dir` is in use by another process,
            or holds another run's state (and `restart` is False).
    """
    if datasets is None:
        datasets = load_datasets(config)
    strategy = strategy or tf.distribute.get_strategy()
    identity = run_identity(config, datasets, strategy.num_replicas_in_sync)
    with run_folder.claim(work_dir, identity, restart=restart):
        return _fit(config, work_dir, datasets, verbose, strategy, callbacks)


def _fit(config, work_dir, datasets, verbose, strategy, callbacks):
    """`train`'s work, in a training folder that the caller has claimed."""
    keras.utils.set_random_seed(config.seed)
    train_images, train_digits = datasets["train"]
    validation = datasets.get("validation")
    has_validation = validation is not None and len(validation[0]) > 0

    # The batch size is per replica: the global batch grows with the replicas.
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    train_ds = data.make_dataset(train_images, train_digits, batch_size=global_batch,
                                 training=True, seed=config.seed)
    val_ds = (data.make_dataset(*validation, batch_size=1000, training=False,
                                seed=config.seed) if has_validation else None)
    steps_per_epoch = math.ceil(len(train_images) / global_batch)
    model = compiled_model(config, strategy, steps_per_epoch)
    # A committee trains each member on its own copy of the digit target.
    train_ds = with_member_targets(train_ds, model)
    val_ds = with_member_targets(val_ds, model) if val_ds is not None else None

    best_path = os.path.join(work_dir, BEST_CHECKPOINT)
    monitor = "val_loss" if has_validation else "loss"
    own = [
        keras.callbacks.ModelCheckpoint(best_path, monitor=monitor, save_best_only=True),
        keras.callbacks.CSVLogger(os.path.join(work_dir, HISTORY_CSV), append=True),
        # Saves the state after every epoch; deleted when training completes.
        keras.callbacks.BackupAndRestore(os.path.join(work_dir, run_folder.BACKUP_DIR)),
        # Loss and metric curves: `tensorboard --logdir <work_dir>/logs`.
        keras.callbacks.TensorBoard(os.path.join(work_dir, TENSORBOARD_LOGS)),
    ]
    if config.ema_momentum:
        # First: the averaged weights are in the model while the callbacks
        # after it validate and checkpoint, and swapped back for training.
        own.insert(0, keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    # shuffle=False: the pipeline reshuffles itself every epoch.
    history = model.fit(train_ds, epochs=config.epochs, validation_data=val_ds,
                        callbacks=own + list(callbacks), verbose=verbose,
                        shuffle=False)
    best = latest_checkpoint(work_dir)
    if best:
        model.load_weights(best)
    return inference_view(model), history


def latest_checkpoint(work_dir):
    """The newest best-on-validation checkpoint in `work_dir` that loads, or None.

    A file cut short by a crash while saving does not load; the one before it,
    written completely, is used instead.
    """
    if not os.path.isdir(work_dir):
        return None
    names = sorted(n for n in os.listdir(work_dir) if re.fullmatch(r"best-\d{3}\.keras", n))
    for name in reversed(names):
        path = os.path.join(work_dir, name)
        try:
            with zipfile.ZipFile(path) as archive:  # A .keras file is a zip.
                if archive.testzip() is None:  # Every member's CRC checks out.
                    return path
        except (zipfile.BadZipFile, OSError, EOFError):
            pass
    return None


def weights_digest(model):
    """SHA-256 of all weights: equal digests mean identical models."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def _worker_dir(config, strategy):
    """A non-chief worker's training folder, in the system's temporary folder.

    The same for the same worker and output folder, so that a worker started
    again after a failure finds its `BackupAndRestore` state there.
    """
    resolver = strategy.cluster_resolver
    key = hashlib.sha256(os.path.abspath(config.output_dir).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(),
                        f"mnist_sum_{resolver.task_type}{resolver.task_id}_{key}")


def _copy_outside_strategy(model, config):
    """The same network and weights, built outside any strategy's scope."""
    copy = build_model(config)
    copy.set_weights(model.get_weights())
    return copy


def run(config, datasets=None, verbose="auto", strategy=None, restart=False):
    """Trains, evaluates on all test pairs and releases a new model version.

    Writes under `config.output_dir/mnist_sum/`: the SavedModel `<version>/`
    and beside it `v<version>.keras`, `v<version>.config.json`,
    `v<version>.history.csv`, `v<version>.metrics.json` and the TensorBoard
    logs `v<version>.logs/`, all or nothing (`export.release`). Training
    happens in `mnist_sum/training/`, held by this run until its release is
    out (`run_folder.claim`), then removed.

    Args:
        config: a `Config`.
        datasets: as for `train`, plus `"test": (images, digits)`.
        verbose: Keras progress-bar verbosity.
        strategy: as for `train`. Only the chief worker evaluates and writes
            the release; other workers train in a folder of the system's
            temporary folder (kept while training, so that a worker started
            again resumes from its backup, and removed at the end) and return
            `{"chief": False, "weights_sha256": ...}`.
        restart: as for `train`.

    Returns:
        The metrics dict (test figures, timings, version and paths).

    Raises:
        run_folder.RunFolderError: as for `train`, before any training.
    """
    start = time.perf_counter()
    source = ({"source": "datasets argument", "sha256": None} if datasets is not None
              else data.describe_source(config.data_path))
    if datasets is None:
        datasets = load_datasets(config)
    base_dir = os.path.join(config.output_dir, MODEL_NAME)
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    work_dir = os.path.join(base_dir, "training") if chief else _worker_dir(config, strategy)
    identity = run_identity(config, datasets, strategy.num_replicas_in_sync)
    with run_folder.claim(work_dir, identity, restart=restart):
        model, _ = _fit(config, work_dir, datasets, verbose, strategy, callbacks=())
        if not chief:
            shutil.rmtree(work_dir, ignore_errors=True)
            return {"chief": False, "weights_sha256": weights_digest(model)}
        metrics = _release(model, config, datasets, source, strategy, base_dir, work_dir,
                           start, verbose)
        shutil.rmtree(work_dir, ignore_errors=True)
    return metrics


def _release(model, config, datasets, source, strategy, base_dir, work_dir, start,
             verbose):
    """Evaluates the trained model and publishes it with its record (`export.release`)."""
    if multi_worker_shim.is_multi_worker(strategy):
        # Under MultiWorkerMirroredStrategy every predict or evaluate call is a
        # collective that all workers must join; the chief alone evaluates and
        # exports, so it does that on a copy of the weights outside the strategy.
        model = _copy_outside_strategy(model, config)
    train_seconds = time.perf_counter() - start
    figures = evaluate(model, *datasets["test"], verbose=verbose)
    version = next_version(base_dir)
    stem = os.path.join(base_dir, f"v{version}")
    metrics = {
        "chief": True,
        "replicas": strategy.num_replicas_in_sync,
        "weights_sha256": weights_digest(model),
        "version": version,
        "saved_model": os.path.join(base_dir, str(version)),
        "keras_model": f"{stem}.keras",
        "test_pairs": figures,
        "train_seconds": round(train_seconds, 1),
        "tensorboard_logs": f"{stem}.logs",
        "config": config.to_dict(data=source),
    }

    def write_metrics(path):
        metrics["total_seconds"] = round(time.perf_counter() - start, 1)
        with open(path, "w") as f:
            json.dump(metrics, f, indent=2)

    release(model, base_dir, version=version, files={
        ".keras": model.save,
        ".config.json": functools.partial(config.to_json, data=source),
        ".history.csv": functools.partial(shutil.copyfile,
                                          os.path.join(work_dir, HISTORY_CSV)),
        ".logs": functools.partial(shutil.copytree, os.path.join(work_dir, TENSORBOARD_LOGS)),
        ".metrics.json": write_metrics,
    })
    return metrics
