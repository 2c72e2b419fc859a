"""tf.distribute strategies: one device, several local devices, several machines."""

import contextlib
import json
import os
import socket

import tensorflow as tf

from mnist_sum_keras.config import STRATEGIES


def make_strategy(name, devices=None):
    """The `tf.distribute` strategy named `name`.

    Args:
        name: "default" (one device), "mirrored" (`MirroredStrategy` over all
            local GPUs, or `devices`) or "multi-worker"
            (`MultiWorkerMirroredStrategy`, cluster read from `TF_CONFIG`).
        devices: device names for "mirrored", e.g. ["/gpu:0", "/gpu:1"]. CPUs
            named beyond the machine's one are made by splitting it into
            logical devices (["/cpu:0", "/cpu:1"]: two replicas on one CPU,
            to try distribution without GPUs).

    Raises:
        ValueError: an unknown name, or "multi-worker" without `TF_CONFIG`.
        UntestedKerasError: "multi-worker" with a Keras version that
            `multi_worker_shim` was not tested on.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices and all(_is_cpu(d) for d in devices):
            _split_cpu(len(devices))
        return tf.distribute.MirroredStrategy(devices=devices or None)
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multi-worker reads the cluster from the TF_CONFIG "
                             "environment variable, which is not set")
        # Refuses before any work when the shim that fit needs is untested here.
        from mnist_sum_keras.multi_worker_shim import check_keras_version
        check_keras_version()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}. Received: strategy={name!r}")


def _is_cpu(device):
    return tf.DeviceSpec.from_string(device).device_type == "CPU"


def _split_cpu(count):
    """Makes `count` logical CPU devices (before TensorFlow starts its devices)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or [cpu]) >= count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as e:  # TensorFlow's devices are already initialised.
        raise ValueError(f"cannot split the CPU into {count} logical devices for "
                         f"--devices after TensorFlow has started: {e}") from e


# Batch-norm moving statistics (Keras names them so) are not trainable, so no
# gradient all-reduce touches them: each replica would keep the statistics of
# its own share of the batches, and workers would end with different models.
MOVING_STATISTICS = ("moving_mean", "moving_variance")


@contextlib.contextmanager
def replica_mean_moving_statistics():
    """Variables made inside average their updates over replicas.

    Batch-norm moving statistics created in this scope get the MEAN
    aggregation (what Keras 2 gave them), so that every assignment in a
    replica is averaged across all replicas, on every worker: all replicas keep
    the same statistics. Without a strategy, the aggregation changes nothing.
    """
    def creator(next_creator, **kwargs):
        if kwargs.get("name") in MOVING_STATISTICS and not kwargs.get("trainable", True):
            kwargs["aggregation"] = tf.VariableAggregation.MEAN
        return next_creator(**kwargs)

    with tf.variable_creator_scope(creator):
        yield


def is_chief(strategy):
    """True on the one worker that writes checkpoints, logs and the export.

    TF's convention: the "chief" task if the cluster has one, else worker 0;
    always True without a cluster.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


def local_cluster(workers):
    """`TF_CONFIG` values for `workers` processes on this machine (tests, benchmarks).

    Binds each port on 127.0.0.1 to pick a free one, then frees it for the
    worker; another process could take it in between, which a test then
    reports as a failed start.

    Returns:
        One JSON string per worker index.
    """
    sockets = [socket.socket() for _ in range(workers)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        hosts = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()
    return [json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})
            for i in range(workers)]
