"""Exports a trained .keras model as a TF Serving SavedModel version, with the current code.

The network is rebuilt by the current `build_model` from the config saved
beside the model (`v<N>.config.json`), the trained weights are copied in, and
the SavedModel (both signatures) and a `.keras` file of the rebuilt model are
written as a new version. Use it when the serving code or the model's
weightless layers (input checks) change but the weights do not: the printed
weight digests must be equal.
"""

import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a trained .keras file, e.g. saved_models/mnist_sum/v5.keras")
    parser.add_argument("--config", default=None,
                        help="its Config JSON (default: <model stem>.config.json beside it)")
    parser.add_argument("--output-dir", required=True,
                        help="base folder receiving <version>/ and v<version>.keras")
    parser.add_argument("--version", type=int, default=None,
                        help="default: one more than the highest version in --output-dir")
    args = parser.parse_args(argv)
    config_path = args.config or os.path.splitext(args.model)[0] + ".config.json"

    from mnist_sum_keras.config import Config
    from mnist_sum_keras.export import release
    from mnist_sum_keras.loading import load_any_model
    from mnist_sum_keras.model import build_model
    from mnist_sum_keras.train import weights_digest

    try:
        if not args.model.endswith(".keras"):
            raise ValueError(f"model must be a .keras file. Received: {args.model!r}")
        trained = load_any_model(args.model)
        config = Config.from_json(config_path)
        model = build_model(config)
        model.set_weights(trained.get_weights())
    except (ValueError, OSError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    before, after = weights_digest(trained), weights_digest(model)
    print(f"weights sha256: trained {before}\n                rebuilt {after}")
    if before != after:
        print("error: the rebuilt model's weights differ", file=sys.stderr)
        return 1
    # The SavedModel and the .keras file appear together, or neither does.
    try:
        saved_model = release(model, args.output_dir, {".keras": model.save},
                              version=args.version)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    version = os.path.basename(saved_model)
    print(f"Wrote {saved_model} and {os.path.join(args.output_dir, f'v{version}.keras')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
