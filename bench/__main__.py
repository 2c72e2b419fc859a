"""python -m bench: every benchmark of bench/run.py in one run."""

import sys

from bench.run import main

sys.exit(main())
