"""Trains the model and releases it under saved_models/mnist_sum/<version>/.

Same as the console script `mnist-sum-train`; the code is in
mnist_sum_keras/cli/train.py.
"""

import sys

from mnist_sum_keras.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
