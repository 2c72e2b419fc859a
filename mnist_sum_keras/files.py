"""Writing files so that a crash never leaves a half-written one in place."""

import json
import os


def write_atomically(path, write):
    """Calls `write(tmp)` then renames tmp to `path`: never a half-written file."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"  # Same extension: model.save wants ".keras".
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomically(path, data):
    """Writes `data` as indented JSON to `path` via `write_atomically`."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
    write_atomically(path, write)
