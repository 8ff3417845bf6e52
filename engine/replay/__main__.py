"""``python -m engine.replay``: see :mod:`engine.replay.cli`."""

import os
import sys

from engine.replay.cli import main

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
