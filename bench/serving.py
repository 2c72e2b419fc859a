"""Serving speed: pairs/s and latency through the served signature against Keras' paths,
the wall-clock of the 100,000-pair evaluation through it, and pictures/s through
`predict_image`.

    python -m bench.serving [--data PATH] [--quick] [--model FILE.keras]
    python -m bench.serving [--data PATH] --pictures SAVED_MODEL_DIR [...]

Run alone, it measures a released `.keras` model (default: the newest under
saved_models/mnist_sum/), exported afresh to `--work-dir`. Writes `serving`
and `exhaustive_eval` into bench/results.json (its other parts are kept).

`--pictures` times only `predict_image`, for each SavedModel given, in one
run (compare releases as ratios on one machine): MNIST test digits as 28x28
PNGs and as 200x200 PNGs (inverted: dark on white), 100 in one request,
best of 3, and one 12 MP phone JPEG, median of 7.
"""

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from bench import common
from bench.machine import format_machine, machine
from mnist_sum_keras.config import NUM_DIGITS
from mnist_sum_keras.evaluate import evaluate
from mnist_sum_keras.export import export_saved_model, latest_version
from mnist_sum_keras.loading import SavedModelPredictor

RELEASED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "saved_models", "mnist_sum")


def serving_speed(model, saved_model_path, images, calls, batch):
    """Pairs/s at a large batch and single-request latency: served vs Keras paths."""
    served = SavedModelPredictor(saved_model_path)
    signature = served._serve
    numbers = (np.arange(len(images)) % NUM_DIGITS).astype(np.int32)
    x_big, n_big = images[:batch], numbers[:batch]
    paths = {
        "served": lambda x, n: signature(image=tf.constant(x), number=tf.constant(n)),
        "keras_predict": lambda x, n: model.predict([x, n], verbose=0, batch_size=len(x)),
        "keras_call": lambda x, n: model([tf.constant(x), tf.constant(n)], training=False),
    }
    rows = {}
    for name, call in paths.items():
        call(x_big, n_big)
        start = time.perf_counter()
        repeats = 5
        for _ in range(repeats):
            out = call(x_big, n_big)
            _ = np.asarray(out["sum"] if "sum" in out else out["sum_probabilities"])
        pairs_per_s = repeats * len(x_big) / (time.perf_counter() - start)
        latencies = []
        for i in range(calls):
            x1, n1 = images[i % len(images)][None], numbers[i % len(images)][None]
            start = time.perf_counter()
            out = call(x1, n1)
            _ = np.asarray(out["sum"] if "sum" in out else out["sum_probabilities"])
            latencies.append(time.perf_counter() - start)
        rows[name] = {"pairs_per_s_batch": pairs_per_s,
                      "latency_p50_ms": 1000 * float(np.percentile(latencies, 50)),
                      "latency_p99_ms": 1000 * float(np.percentile(latencies, 99))}
    return rows


def picture_speed(saved_model_path, images, batch=100, repeats=3):
    """`predict_image` on small pictures and a phone photo: `{"28px PNG": images/s,
    "200px PNG": images/s, "12 MP JPEG ms": ms}`, and how many small pictures it
    found a digit in (all of them, unless it reads worse)."""
    from PIL import Image

    from bench.photos import big_photo, seconds_per_photo
    from mnist_sum_keras.frontend.synthetic import encode

    sets = {"28px PNG": [encode(x, "PNG") for x in images[:batch]],
            "200px PNG": [encode(np.asarray(Image.fromarray(255 - x).resize(
                (200, 200), Image.BILINEAR)), "PNG") for x in images[:batch]]}
    signature = common.signatures(saved_model_path)["predict_image"]
    row, found = {}, {}
    for name, pictures in sets.items():
        args = {"image_bytes": tf.constant(pictures),
                "number": tf.zeros([len(pictures)], tf.int32)}
        out = signature(**args)
        found[name] = int(np.sum(out["found"])) if "found" in out else len(pictures)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            signature(**args)["digit"].numpy()
            times.append(time.perf_counter() - start)
        row[name] = len(pictures) / min(times)
    row["12 MP JPEG ms"] = 1000 * seconds_per_photo(
        signature, big_photo(np.random.default_rng([0, 200]), images[0]))
    return row, found


def format_pictures(rows):
    """`picture_speed`'s rows (`{path: (row, found)}`) as a table, with ratios to the first."""
    first = next(iter(rows.values()))[0]
    lines = ["predict_image: 100 pictures in one request (images/s), one 12 MP JPEG (ms)"]
    for path, (row, found) in rows.items():
        cells = [f"{name} {value:.0f} ({value / first[name]:.2f}x)" for name, value in row.items()]
        lines.append(f"   {path}: " + "; ".join(cells)
                     + f"; digits found {found['28px PNG']} and {found['200px PNG']}")
    return "\n".join(lines)


def exhaustive_eval_seconds(saved_model_path, images, digits):
    """Wall-clock of the 100,000-pair evaluation through the served signature."""
    served = SavedModelPredictor(saved_model_path)
    start = time.perf_counter()
    figures = evaluate(served, images, digits, batch_size=1000)
    return time.perf_counter() - start, figures


def serving(model, work_dir, images, digits, quick):
    """The `serving` and `exhaustive_eval` parts of bench/results.json for `model`."""
    saved = export_saved_model(model, os.path.join(work_dir, "served"))
    rows = serving_speed(model, saved, images, 20 if quick else 1000, 100 if quick else 1000)
    seconds, figures = exhaustive_eval_seconds(saved, images, digits)
    return {"serving": rows, "exhaustive_eval": {"seconds": seconds, **figures}}


def format_serving(r):
    """The parts' table, as `python -m bench` prints it."""
    s = r["serving"]
    lines = []
    lines.append("4. Serving speed")
    for name, row in s.items():
        lines.append(f"   {name:<14} {row['pairs_per_s_batch']:>9.0f} pairs/s at batch; "
                     f"latency p50 {row['latency_p50_ms']:.2f} ms, "
                     f"p99 {row['latency_p99_ms']:.2f} ms")
    lines.append(f"   100,000-pair evaluation through serving_default: "
                 f"{r['exhaustive_eval']['seconds']:.1f} s")
    return "\n".join(lines)


def main(argv=None):
    parser = common.parser(__doc__)
    parser.add_argument("--model", default=None,
                        help="a .keras file (default: the newest release's)")
    parser.add_argument("--work-dir", default=os.path.join("bench", "work"),
                        help="where the model is exported (served/<version>)")
    parser.add_argument("--pictures", nargs="+", metavar="SAVED_MODEL_DIR",
                        help="only time predict_image of these SavedModels, in one run")
    args = parser.parse_args(argv)
    if args.pictures:
        _, splits = common.config_and_splits(args.data, True)
        images = splits["test"][0]
        rows = {path: picture_speed(path, images) for path in args.pictures}
        print(format_machine(machine()) + "\n\n" + format_pictures(rows))
        return 0
    import mnist_sum_keras.model  # noqa: F401  Registers the custom layers.

    path = args.model or latest_version(RELEASED)
    if args.model is None:
        path = os.path.join(RELEASED, f"v{os.path.basename(path)}.keras")
    model = keras.models.load_model(path)
    _, splits = common.config_and_splits(args.data, args.quick)
    parts = serving(model, args.work_dir, *splits["test"], args.quick)
    common.save_parts(args.output, parts)
    print(format_machine(machine()) + f"\nModel: {path}\n\n" + format_serving(parts))
    print(f"\nWrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
