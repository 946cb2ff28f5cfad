"""Parity audits: compare, oracle, conventions, golden files."""

from .compare import *  # noqa: F401,F403
from .compare import __version__  # noqa: F401
