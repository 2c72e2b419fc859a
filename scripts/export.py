"""Exports a trained .keras model as a TF Serving SavedModel version, with the current code.

Same as the console script `mnist-sum-export`; the code is in
mnist_sum_keras/cli/export.py.
"""

import sys

from mnist_sum_keras.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
