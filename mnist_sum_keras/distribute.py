"""tf.distribute strategies: one device, several local devices, several machines."""

import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name, devices=None):
    """The `tf.distribute` strategy named `name`.

    Args:
        name: "default" (one device), "mirrored" (`MirroredStrategy` over all
            local GPUs, or `devices`) or "multi-worker"
            (`MultiWorkerMirroredStrategy`, cluster read from `TF_CONFIG`).
        devices: device names for "mirrored", e.g. ["/gpu:0", "/gpu:1"].

    Raises:
        ValueError: an unknown name, or "multi-worker" without `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices or None)
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("--strategy multi-worker reads the cluster from the TF_CONFIG "
                             "environment variable, which is not set")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}. Received: strategy={name!r}")


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
