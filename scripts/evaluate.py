"""Evaluates a trained model on the MNIST test set; writes metrics.json and plots.

Same as the console script `mnist-sum-evaluate`; the code is in
mnist_sum_keras/cli/evaluate.py.
"""

import sys

from mnist_sum_keras.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
