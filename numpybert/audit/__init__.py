"""Parity audits: compare, oracle, conventions, golden files."""

from .compare import *  # noqa: F401,F403
from .compare import __version__  # noqa: F401
from .golden import read_golden, write_golden  # noqa: F401  (the interchange format: docs/golden-format.md)
