"""`python -m benchmarks.linkage [options]`: the same as `python -m benchmarks --only linkage`."""

import sys

from ..run import main

raise SystemExit(main(["--only", "linkage", *sys.argv[1:]]))
