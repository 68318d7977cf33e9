"""``python -m bench``: run every benchmark once and print the figures (see bench/README.md)."""

import sys

from bench.suite import main

sys.exit(main())
