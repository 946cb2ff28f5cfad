"""One error family for everything numpybert refuses.

Every error numpybert raises on bad input derives from `NumpybertError`, and also from
the built-in exception a caller would expect (ValueError, TypeError, FileNotFoundError),
so both `except numpybert.NumpybertError` and `except ValueError` work. Messages name the
culprit: the file, the tensor, the config field, or the item index.
"""


class NumpybertError(Exception):
    """Base class of every error numpybert raises on purpose."""


class ConfigError(NumpybertError, ValueError):
    """config.json is unreadable, or asks for something numpybert does not support."""


class WeightsNotFoundError(NumpybertError, FileNotFoundError):
    """A model directory, config or weights file does not exist."""


class WeightsError(NumpybertError, ValueError):
    """A weights file is malformed, or its tensors do not match the config."""


class MissingWeightsError(NumpybertError, ValueError):
    """The checkpoint lacks the part asked for (the pooler, a task head)."""


class InputValueError(NumpybertError, ValueError):
    """An input has the right type but a bad value (id out of range, bad mask, too long)."""


class InputTypeError(NumpybertError, TypeError):
    """An input has the wrong type (float ids, a non-str text)."""


class GoldenError(NumpybertError, ValueError):
    """A golden file is of another format version, or does not hold what a check needs."""


class OutputError(NumpybertError, OSError):
    """An output file cannot be written where asked (missing or read-only directory)."""


class MissingExtraError(NumpybertError, ImportError):
    """An optional feature needs packages that are not installed; the message names the extra."""


def install_hint(extra: str) -> str:
    """How to add an extra, for every message that names one. numpybert is not on PyPI, so
    a bare `numpybert[extra]` requirement finds nothing: from a checkout, or from the wheel it builds."""
    from . import __version__
    return (f"pip install -e '.[{extra}]' in a checkout of numpybert, or "
            f"pip install 'numpybert-{__version__}-py3-none-any.whl[{extra}]' from a built wheel")
