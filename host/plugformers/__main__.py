"""``python -m plugformers``: the command line (what ``torchrun -m plugformers predict ...`` runs on each rank)."""

import sys

from plugformers.cli import main

sys.exit(main())
