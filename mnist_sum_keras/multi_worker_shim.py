"""Shim: Keras 3 `model.fit` under `tf.distribute.MultiWorkerMirroredStrategy`.

The only module of the package that imports `keras.src`. Keras 3's
TensorFlow trainer breaks with MultiWorkerMirroredStrategy (MWMS) in two
places, both still unfixed on Keras master when this was written:

1. `TensorFlowTrainer._maybe_symbolic_build` (keras-team/keras#19969, relanded
   as #20051, Keras 3.5) averages the whole first batch across replicas with
   `strategy.reduce("MEAN", batch, axis=None)` only to learn its shapes and
   dtypes. MWMS hands the whole nest to its collective ops: "Attempt to
   convert a value ({'image': PerReplica...}) with an unsupported type
   (<class 'dict'>) to a Tensor" (keras-team/keras#20329, #20585). Here the
   first local replica's batch is used instead: same shapes and dtypes, no
   collective (which would refuse uint8 images anyway).
2. `reduce_per_replica` reduces the scalar loss and metric values with
   `strategy.reduce("MEAN", v, axis=0)` on MWMS: "Invalid reduction dimension
   0 for input with 0 dimensions" (tensorflow/tensorflow#72388, Keras 3.3+).
   Here scalars are averaged over replicas with `axis=None`.

Delete this module (and its calls in `train.py` and `distribute.py`) once a
Keras release fixes both: the multi-worker tests in `tests/test_distribute.py`
fail without `apply(...)` today and will pass without it then.
"""

import types

import keras
import tensorflow as tf
from keras.src import tree
from keras.src.backend.tensorflow import trainer as _trainer

# The Keras versions this shim was tested on; it refuses to patch any other.
TESTED_KERAS_VERSIONS = ("3.15.1",)

_original_reduce_per_replica = _trainer.reduce_per_replica


def is_multi_worker(strategy):
    """True for a `MultiWorkerMirroredStrategy`, the only strategy patched."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class UntestedKerasError(RuntimeError):
    """The installed Keras is not one the shim was tested on."""


def check_keras_version(version=None):
    """Raises `UntestedKerasError` unless `version` (default: Keras') was tested."""
    version = version or keras.__version__
    if version not in TESTED_KERAS_VERSIONS:
        raise UntestedKerasError(
            f"--strategy multi-worker needs mnist_sum_keras.multi_worker_shim, "
            f"which was tested on Keras {', '.join(TESTED_KERAS_VERSIONS)}. Received: "
            f"Keras {version}. Install a tested version, or check whether "
            "keras-team/keras#20329 and tensorflow/tensorflow#72388 are fixed in it "
            "(then delete the shim) or that the shim still applies (then add the "
            "version to TESTED_KERAS_VERSIONS).")


def _build_from_local_batch(self, iterator=None, data_batch=None):
    """`_maybe_symbolic_build` that reads shapes from one local replica's batch."""
    if iterator is not None:
        for _, _, it in iterator:
            data_batch = tree.map_structure(
                lambda v: self.distribute_strategy.experimental_local_results(v)[0],
                next(it))
            break
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _reduce_per_replica(values, strategy, reduction):
    """`reduce_per_replica` whose MWMS mean of a scalar uses `axis=None`."""
    if reduction in ("auto", "mean") and _trainer._collective_all_reduce_multi_worker(
            strategy):
        def reduce(v):
            if strategy.experimental_local_results(v)[0].shape.rank == 0:
                return strategy.reduce("MEAN", v, axis=None)
            return _original_reduce_per_replica(v, strategy, reduction)
        return tree.map_structure(reduce, values)
    return _original_reduce_per_replica(values, strategy, reduction)


def apply(model, strategy):
    """Patches `model` (and Keras' metric reduction) to train under `strategy`.

    Does nothing unless `strategy` is a `MultiWorkerMirroredStrategy`; the
    reduction patch leaves every other strategy on Keras' own code path.

    Raises:
        UntestedKerasError: MWMS with a Keras version the shim was not tested on.
    """
    if not is_multi_worker(strategy):
        return
    check_keras_version()
    model._maybe_symbolic_build = types.MethodType(_build_from_local_batch, model)
    _trainer.reduce_per_replica = _reduce_per_replica
