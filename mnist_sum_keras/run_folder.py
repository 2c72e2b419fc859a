"""A training folder belongs to one run: its identity, one process at a time.

`claim(work_dir, identity)` is what `train` and `run` hold while they use a
training folder:

- **One process at a time.** An advisory lock (`fcntl.flock`) on
  `<work_dir>/lock`, which the operating system releases when its process
  ends, however it ends: a second command on a folder in use is refused at
  once, naming the process that holds it, and a lock file left by a killed
  run blocks nothing.
- **Resume only the same run.** The run's identity (`run_identity`: every
  field of the config that shapes the weights, a digest of the training data,
  the replicas and the package version) is written to `<work_dir>/run.json`
  when the run starts. A folder holding another run's state (a different
  identity, or files without an identity) is refused before anything in it
  is touched, with each differing field and both ways forward; `restart=True`
  (`train.py --restart`) discards it instead.
- A folder of the same run with nothing to resume (no `BackupAndRestore`
  state: killed before its first epoch ended, or after training but before
  its release) is emptied and the run starts afresh, so no checkpoint or
  history line of the earlier attempt can leak into this one.

POSIX only (`fcntl`), as the rest of the training tools.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import sys
import time

import numpy as np

from mnist_sum_keras import __version__
from mnist_sum_keras.files import write_json_atomically

IDENTITY_FILE = "run.json"
LOCK_FILE = "lock"
# Keras' BackupAndRestore folder inside a training folder (see `train`).
BACKUP_DIR = "backup"
# Config fields that say where files go, not what is trained.
_PLACE_FIELDS = ("data_path", "output_dir")


class RunFolderError(ValueError):
    """A training folder this command may not use: in use, or another run's."""


def data_digest(datasets):
    """SHA-256 of the training and validation arrays (their shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for split in ("train", "validation"):
        for array in datasets.get(split) or ():
            array = np.ascontiguousarray(array)
            digest.update(f"{split}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def run_identity(config, datasets, replicas=1):
    """What must be equal for a command to resume a run.

    Args:
        config: the run's `Config`; where its files go (`output_dir`) and
            where its data was read from (`data_path`) are left out, the data
            itself is in `data_sha256`.
        datasets: the `{"train", "validation"}` arrays it trains on.
        replicas: replicas in sync (the global batch is per-replica batch x
            replicas).

    Returns:
        A JSON-ready dict, flat: config fields by name, then `data_sha256`,
        `replicas` and `package_version`.
    """
    identity = {k: v for k, v in config.to_dict().items() if k not in _PLACE_FIELDS}
    # As JSON has them (tuples become lists), so a record read back compares equal.
    identity = json.loads(json.dumps(identity))
    identity.update(data_sha256=data_digest(datasets), replicas=int(replicas),
                    package_version=__version__)
    return identity


def differences(recorded, current):
    """Lines `field: <recorded> in the interrupted run, <current> now`, one per field."""
    def show(value):
        return "(absent)" if value is _ABSENT else json.dumps(value)

    lines = []
    for key in list(recorded) + [k for k in current if k not in recorded]:
        before, now = recorded.get(key, _ABSENT), current.get(key, _ABSENT)
        if before != now:
            lines.append(f"{key}: {show(before)} in the interrupted run, {show(now)} now")
    return lines


_ABSENT = object()


def _holder(lock_path):
    """What the process holding `lock_path` wrote there (bounded wait for it)."""
    deadline = time.monotonic() + 2.0
    while True:
        try:
            with open(lock_path) as f:
                text = f.read()
            return json.loads(text)
        except (OSError, ValueError):
            # The holder writes its record just after taking the lock.
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.05)


def _describe(holder):
    if not holder:
        return "another process"
    command = " ".join(holder.get("command", []))
    return (f"process {holder.get('pid')} on {holder.get('host')}, started "
            f"{holder.get('started')}" + (f": {command}" if command else ""))


@contextlib.contextmanager
def _lock(work_dir):
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(work_dir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(
                f"The training folder {work_dir} is in use by {_describe(_holder(path))}. "
                "Wait for that run to end, or give this one another --output-dir."
            ) from None
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "command": sys.argv}, handle)
        handle.flush()
        yield
    finally:
        handle.close()  # Releases the lock (so does the process's end).


def _leftovers(work_dir):
    return sorted(set(os.listdir(work_dir)) - {LOCK_FILE})


def _empty(work_dir):
    for name in _leftovers(work_dir):
        path = os.path.join(work_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _refuse(work_dir, why):
    raise RunFolderError(
        f"The training folder {work_dir} {why}\n"
        "To resume that run, rerun the command that started it. To discard its state "
        "and train this run from the start, add --restart (restart=True in Python), "
        "or give this run another --output-dir.")


@contextlib.contextmanager
def claim(work_dir, identity, restart=False):
    """Holds `work_dir` for one run with `identity` while the block runs.

    Args:
        work_dir: the training folder (created if missing).
        identity: `run_identity(...)` of this command.
        restart: discard another run's state in the folder instead of refusing.

    Yields:
        True when the folder holds this run's `BackupAndRestore` state, so that
        training resumes; False when it starts from the first epoch.

    Raises:
        RunFolderError: the folder is in use by another process, or holds
            another run's state and `restart` is False. Nothing in the folder
            has been changed then.
    """
    with _lock(work_dir):
        identity_path = os.path.join(work_dir, IDENTITY_FILE)
        leftovers = _leftovers(work_dir)
        resumable = os.path.isdir(os.path.join(work_dir, BACKUP_DIR))
        if leftovers and not restart:
            try:
                with open(identity_path) as f:
                    recorded = json.load(f)
            except (OSError, ValueError):
                _refuse(work_dir, "holds files of an earlier run that did not record its "
                        f"settings ({', '.join(leftovers)}), so it cannot be resumed safely.")
            changed = differences(recorded, identity)
            if changed:
                what = "an interrupted run" if resumable else "files of an earlier run"
                _refuse(work_dir, f"holds {what} that differs from this command:\n  "
                        + "\n  ".join(changed))
        if restart or not resumable:
            _empty(work_dir)  # Nothing of this run to resume: start clean.
            resumable = False
        write_json_atomically(identity_path, identity)
        yield resumable
