"""`python -m mlimages.cli ...` runs the `mlimages` console script."""

import sys

from mlimages.cli import main

sys.exit(main())
