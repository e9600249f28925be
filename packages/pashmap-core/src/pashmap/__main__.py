"""``python -m pashmap``: the same as the ``pashmap`` command."""

import sys

from pashmap.cli import main

sys.exit(main())
