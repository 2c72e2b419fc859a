"""Predicts the digit in your own images and its sum with a number.

Same as the console script `mnist-sum-predict`; the code is in
mnist_sum_keras/cli/predict.py.
"""

import sys

from mnist_sum_keras.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
