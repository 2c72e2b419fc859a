"""Serves the model with TF Serving's REST API and a drawing page at http://127.0.0.1:8501/.

Same as the console script `mnist-sum-serve`; the code is in
mnist_sum_keras/cli/serve.py.
"""

import sys

from mnist_sum_keras.cli.serve import main

if __name__ == "__main__":
    sys.exit(main())
