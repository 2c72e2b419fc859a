"""Screens recipe candidates on the validation split, over several seeds; never the test set.

    python -m bench.screen --data PATH --variant NAME:FIELD=VALUE,... [...] --seeds 1 2
                           [--work-dir bench/work/screen] [--output bench/work/screen.jsonl]

Each variant is the default `Config` with some fields changed (as
`bench.architectures` takes them, e.g. `e28:epochs=28`). Every (variant,
seed) trains with `train.train`, which checkpoints on validation loss and
never evaluates on the test split; its validation figures at the last epoch
and at the best one, and the training seconds, are appended as one JSON line
to `--output` and printed. A pair already in `--output` is skipped, so an
interrupted screen continues where it stopped. The best checkpoint of each
run stays in `<work-dir>/<variant>-s<seed>/`, to be evaluated on the test set
once, after the choice. At the end, each variant's mean over its seeds.
"""

import argparse
import csv
import dataclasses
import json
import os
import sys
import time

from bench.common import parse_variant
from mnist_sum_keras.config import Config
from mnist_sum_keras.train import HISTORY_CSV, load_datasets, train

# A committee (`members`) has no loss on its averaged digit: val_digit_loss is None.
FIGURES = ("val_loss", "val_digit_accuracy", "val_sum_accuracy", "val_digit_loss")


def validation_figures(history_csv):
    """`{"last": {...}, "best": {...}}` of a run's history: the last epoch, and the
    epoch of lowest validation loss (the one `train` restores)."""
    with open(history_csv) as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    best = min(rows, key=lambda row: row["val_loss"])
    return {"epochs": len(rows),
            "last": {k: rows[-1].get(k) for k in FIGURES},
            "best": {"epoch": int(best["epoch"]) + 1, **{k: best.get(k) for k in FIGURES}}}


def done(output):
    """The (variant, seed) pairs already in `output`, with their lines."""
    if not os.path.exists(output):
        return {}
    with open(output) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return {(line["variant"], line["seed"]): line for line in lines}


def summary(lines):
    """One row per variant: mean of its seeds' last-epoch validation figures."""
    rows = []
    for variant in dict.fromkeys(line["variant"] for line in lines):
        runs = [line for line in lines if line["variant"] == variant]
        mean = {k: (None if any(r["last"][k] is None for r in runs)
                    else sum(r["last"][k] for r in runs) / len(runs)) for k in FIGURES}
        rows.append(f"{variant:<28} seeds {','.join(str(r['seed']) for r in runs):<8} "
                    f"val loss {mean['val_loss']:.4f}  "
                    f"digit {100 * mean['val_digit_accuracy']:.3f}%  "
                    f"sum {100 * mean['val_sum_accuracy']:.3f}%  digit loss "
                    + (f"{mean['val_digit_loss']:.4f}  " if mean["val_digit_loss"] is not None
                       else "-  ") +
                    f"{sum(r['train_seconds'] for r in runs) / len(runs):.0f} s/run")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="local MNIST npz")
    parser.add_argument("--variant", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--work-dir", default=os.path.join("bench", "work", "screen"))
    parser.add_argument("--output", default=os.path.join("bench", "work", "screen.jsonl"))
    args = parser.parse_args(argv)
    variants = [parse_variant(spec) for spec in args.variant]
    finished = done(args.output)
    datasets = None
    for name, changes in variants:
        for seed in args.seeds:
            if (name, seed) in finished:
                continue
            config = dataclasses.replace(Config(), data_path=args.data, seed=seed, **changes)
            datasets = datasets or load_datasets(config)
            work = os.path.join(args.work_dir, f"{name}-s{seed}")
            start = time.perf_counter()
            train(config, work, datasets={k: datasets[k] for k in ("train", "validation")},
                  verbose=0)
            line = {"variant": name, "seed": seed, "changes": changes,
                    "train_seconds": round(time.perf_counter() - start, 1),
                    **validation_figures(os.path.join(work, HISTORY_CSV))}
            os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
            with open(args.output, "a") as f:
                f.write(json.dumps(line) + "\n")
            finished[(name, seed)] = line
            print(json.dumps(line), flush=True)
    names = [name for name, _ in variants]
    print(summary([line for key, line in finished.items() if key[0] in names]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
