"""Sends images and numbers to a running TF Serving (REST), prints the answers.

Same as the console script `mnist-sum-serving-client`; the code is in
mnist_sum_keras/cli/serving_client.py.
"""

import sys

from mnist_sum_keras.cli.serving_client import main

if __name__ == "__main__":
    sys.exit(main())
