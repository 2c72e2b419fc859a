"""Trains the front end's verifier on what the front end draws from synthetic photos.

    python -m mnist_sum_keras.frontend.train_verifier --data PATH [--per-condition 500]

Renders photos (`synthetic.render`) of MNIST **train** digits (the first
55,000: the model's validation and test splits are never used) under every
condition, the same digits' own 28x28 pictures, and pictures with no digit
(`synthetic.render_blank`, every kind), all seeded. The front end draws its
candidates from each (`stages.drawn_candidates`); a candidate is a digit
when its marks hold most of the digit's ink and are mostly the digit's ink
(`label`), not one when they are mostly not (every candidate of a picture with
no digit), and is left out in between (half a digit, a digit joined to a
shadow). The verifier's committee (`verifier.build`, each member from its
own seed) is trained on those, seeded and deterministic, and its weights
written to `verifier.WEIGHTS`. Prints how
many candidates of each kind, and the validation accuracy.
"""

import argparse
import hashlib
import multiprocessing
import os
import sys
import time

import numpy as np

# A candidate is a digit when it holds at least this share of the digit's ink
# and this share of its marks are the digit's; not one below the second bound.
RECALL, PRECISION, NOT_DIGIT = 0.7, 0.6, 0.2
TRAIN_DIGITS = 55000
# Kinds of picture drawn this many times more often: tight crops are varied
# (every size, coarse scans, both ways round) and a digit's own 28x28 picture
# is what bench.agreement sends.
MORE = {"tight crop": 3, "mnist": 2}


def label(candidate, alpha):
    """1.0 (the digit), 0.0 (not the digit) or NaN (left out) for a candidate's marks
    (bool (h, w)) against the digit's ink in the picture (float (h, w) 0..1, or None
    for a picture with no digit)."""
    if alpha is None or not candidate.any():
        return 0.0
    digit = alpha > 0.3
    overlap = float((candidate & (alpha > 0.05)).sum())
    precision = overlap / candidate.sum()
    recall = float((candidate & digit).sum()) / max(digit.sum(), 1)
    if recall >= RECALL and precision >= PRECISION:
        return 1.0
    return 0.0 if precision < NOT_DIGIT else float("nan")


_WORKER = {}


def _worker_state(data_path):
    """The worker's MNIST training images and traced front end, made once per process."""
    if not _WORKER:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from mnist_sum_keras.data import load_mnist
        from mnist_sum_keras.frontend import decode, stages

        (_WORKER["x_train"], _), _ = load_mnist(data_path)
        _WORKER["read"] = tf.function(
            lambda b: stages.drawn_candidates(decode.decode(b, shrink_to=stages.WORK_SIZE)),
            input_signature=[tf.TensorSpec([], tf.string)])
    return _WORKER["x_train"], _WORKER["read"]


def _work(args):
    """Renders and reads one chunk of pictures (in a worker process)."""
    jobs, data_path = args
    x_train, read = _worker_state(data_path)
    import tensorflow as tf

    from mnist_sum_keras.frontend import synthetic

    images, features, labels = [], [], []
    for seed, kind, index in jobs:
        rng = np.random.default_rng(seed)
        alpha = None
        if kind == "mnist":
            digit = x_train[index]
            picture = tf.io.encode_png(digit[..., None]).numpy()
            alpha = digit / 255.0
        elif kind in synthetic.BLANKS:
            picture = synthetic.render_blank(rng, kind)
        else:
            picture, alpha = synthetic.render(rng, x_train[index], kind, with_alpha=True)
        drawn, described, valid, masks = (t.numpy() for t in read(tf.constant(picture)))
        if alpha is not None:
            alpha = tf.image.resize(alpha[..., None].astype(np.float32), masks.shape[1:],
                                    method="area").numpy()[..., 0]
        for k in np.flatnonzero(valid):
            images.append(drawn[k])
            features.append(described[k])
            labels.append(label(masks[k], alpha))
    return images, features, labels


def _cache_key(per_condition, blanks, seed):
    """Names a candidate set by its arguments and the code that draws it, so a
    cached set is never used after the front end or the renderer changed."""
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256(f"{per_condition} {blanks} {seed}".encode())
    for name in ("decode.py", "kernels.py", "stages.py", "synthetic.py", "train_verifier.py"):
        with open(os.path.join(here, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def candidate_set(data_path, per_condition, blanks, seed, processes=2, verbose=1,
                  cache=None):
    """`(images, features, labels)` of every candidate drawn from a seeded set
    (read from, or written to, `cache`, a folder, when given)."""
    from mnist_sum_keras.frontend import synthetic

    if cache:
        path = os.path.join(cache, f"candidates-{_cache_key(per_condition, blanks, seed)}.npz")
        if os.path.exists(path):
            with np.load(path) as data:
                return data["images"], data["features"], data["labels"]
        result = candidate_set(data_path, per_condition, blanks, seed, processes, verbose)
        os.makedirs(cache, exist_ok=True)
        np.savez(path + ".tmp.npz", images=result[0], features=result[1], labels=result[2])
        os.replace(path + ".tmp.npz", path)
        return result

    rng = np.random.default_rng(seed)
    jobs = []
    for k, kind in enumerate(synthetic.CONDITIONS + ("mnist",)):
        count = per_condition * MORE.get(kind, 1)
        for i, index in enumerate(rng.choice(TRAIN_DIGITS, count, replace=False)):
            jobs.append(((seed, k, i), kind, int(index)))
    for k, kind in enumerate(synthetic.BLANKS):
        jobs += [((seed, 100 + k, i), kind, None) for i in range(blanks)]
    chunks = [(jobs[i::processes * 8], data_path) for i in range(processes * 8)]
    start, parts = time.time(), []
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for part in pool.imap_unordered(_work, chunks):
            parts.append(part)
            if verbose:
                print(f"  {len(parts)}/{len(chunks)} chunks of {len(jobs)} pictures "
                      f"({time.time() - start:.0f} s)", flush=True)
    images = np.array([im for p in parts for im in p[0]], np.uint8)
    features = np.array([f for p in parts for f in p[1]], np.float32)
    labels = np.array([y for p in parts for y in p[2]], np.float32)
    keep = ~np.isnan(labels)
    return images[keep], features[keep], labels[keep]


def train(data_path, per_condition=500, blanks=300, seed=0, epochs=20, processes=2,
          verbose=1, cache=None, members=3):
    """Trains the verifier's committee; returns its Keras models and its validation
    accuracy."""
    import keras
    import tensorflow as tf

    start = time.time()
    train_set = candidate_set(data_path, per_condition, blanks, seed, processes, verbose, cache)
    val_set = candidate_set(data_path, max(1, per_condition // 5), max(1, blanks // 5),
                            seed + 1, processes, verbose, cache)
    if verbose:
        for name, (_, _, y) in (("train", train_set), ("validation", val_set)):
            print(f"{name}: {int(y.sum())} digit candidates, {int((1 - y).sum())} others "
                  f"({time.time() - start:.0f} s)", flush=True)
    tf.config.experimental.enable_op_determinism()
    from mnist_sum_keras.frontend import stages, verifier

    images, features, labels = train_set
    positive = labels.mean()
    weights = np.where(labels > 0, 0.5 / positive, 0.5 / (1 - positive)).astype(np.float32)
    models = []
    for member in range(members):
        keras.utils.set_random_seed(seed * 100 + member)
        model = verifier.build(len(stages.FEATURES))
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryAccuracy(threshold=0.0)])
        model.fit({"image": images, "features": features}, labels, sample_weight=weights,
                  batch_size=128, epochs=epochs, shuffle=True, verbose=2 if verbose else 0)
        models.append(model)
    v_images, v_features, v_labels = val_set
    likely = verifier.score(v_images, v_features, [verifier.weights_of(m) for m in models])
    likely = np.asarray(likely)
    accuracy = float(((likely >= 0.5) == (v_labels > 0)).mean())
    if verbose:
        missed = float((likely[v_labels > 0] < 0.5).mean())
        passed = float((likely[v_labels == 0] >= 0.5).mean())
        print(f"validation: accuracy {100 * accuracy:.2f}%, digits refused "
              f"{100 * missed:.2f}%, others passed {100 * passed:.2f}% (at 0.5)", flush=True)
    return models, accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="MNIST npz (default: $MNIST_SUM_DATA "
                        "or the Keras download)")
    parser.add_argument("--per-condition", type=int, default=500)
    parser.add_argument("--blanks", type=int, default=300, help="pictures per blank kind")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--members", type=int, default=3, help="committee members, "
                        "each from its own seed (their probabilities are averaged)")
    parser.add_argument("--output", default=None, help="weights file (default: the "
                        "package's verifier.npz)")
    parser.add_argument("--cache", default=None, help="a folder keeping the candidate sets "
                        "drawn (named by the code that drew them), to train again quickly")
    args = parser.parse_args(argv)
    from mnist_sum_keras.frontend import verifier

    models, _ = train(args.data, args.per_condition, args.blanks, args.seed, args.epochs,
                      args.processes, cache=args.cache, members=args.members)
    verifier.save(models, args.output or verifier.WEIGHTS)
    print(f"wrote {args.output or verifier.WEIGHTS}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
