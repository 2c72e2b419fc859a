"""Serves the model with TF Serving's REST API and a drawing page at http://127.0.0.1:8501/.

A local stand-in for trying the model; TF Serving is the production server
(docs/serving.md). With --tf-serving URL it forwards the API to a running TF
Serving and serves only the page, so both share one origin.
"""

import argparse
import os
import sys

from mnist_sum_keras.config import DATA_ENV_VAR, MODEL_NAME, Config

# Where `train.py` releases by default: relative to the working directory.
RELEASED = os.path.join(Config().output_dir, MODEL_NAME)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=RELEASED,
                        help="model base folder (its newest version is served) or a "
                             "version folder (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; 0.0.0.0 exposes it to the network "
                             "(default: %(default)s)")
    parser.add_argument("--port", type=int, default=8501, help="default: %(default)s")
    parser.add_argument("--data", default=os.environ.get(DATA_ENV_VAR),
                        help=f"MNIST npz: the page offers a few test images "
                             f"(default: ${DATA_ENV_VAR}, else none)")
    parser.add_argument("--tf-serving", default=None, metavar="URL",
                        help="forward the /v1/ API to this TF Serving, e.g. "
                             "http://localhost:8501, instead of answering it")
    parser.add_argument("--quiet", action="store_true", help="no line per request")
    args = parser.parse_args(argv)

    from mnist_sum_keras.data import DataError
    from mnist_sum_keras.server import make_server

    try:
        server = make_server(args.model, args.host, args.port, data_path=args.data,
                             tf_serving=args.tf_serving, log=not args.quiet)
    except (ValueError, DataError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    what = (f"forwarding /v1/ to {args.tf_serving}" if args.tf_serving else
            f"model {server.servable.path} (version {server.servable.version})")
    print(f"Serving {what}\nPage: http://{args.host}:{server.server_port}/   "
          f"(Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nStopped.", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
