"""`python -m numpybert.cli`: the `numpybert` command."""

import sys

from . import main

sys.exit(main())
