"""`python -m numpybert`: the `numpybert` command."""

import sys

from .cli import main

sys.exit(main())
