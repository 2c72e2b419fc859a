"""Command lines: `python scripts/<name>.py` and the `mnist-sum-<name>` console scripts."""
