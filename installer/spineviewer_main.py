"""Entry point of the frozen app (installer/spineviewer.spec): the ``spineviewer`` command."""

import multiprocessing
import sys

from spineviewer.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # worker processes of a frozen app re-enter here
    sys.exit(main())
