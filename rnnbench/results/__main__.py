"""`python -m rnnbench.results PATH`: see cli.py."""

import sys

from rnnbench.results.cli import main

if __name__ == "__main__":
    sys.exit(main())
