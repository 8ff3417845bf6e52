"""``python -m engine.experiments claims ...``: see :mod:`engine.experiments.cli`."""

import os
import sys

from engine.experiments.cli import main

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
