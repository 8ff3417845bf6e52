"""``python -m engine.import_alma FILE [--out PATH]``: convert a design written for the official ALMA code (the
converter lives in :mod:`engine.alma.importer`)."""

import sys

from engine.alma.importer import main

if __name__ == "__main__":
    sys.exit(main())
