"""``python -m engine.report``: see :mod:`engine.report.page`."""

import sys

from engine.report.page import main

if __name__ == "__main__":
    sys.exit(main())
