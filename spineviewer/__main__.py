"""``python -m spineviewer``: the same as the ``spineviewer`` command."""

import sys

from spineviewer.cli import main

sys.exit(main())
