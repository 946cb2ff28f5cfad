"""Where the model is when nobody says: one resolution order for every command and `numpybert.load()`.

    1. --model DIR (or `numpybert.load(DIR)`)        the directory given
    2. $NUMPYBERT_MODEL                               a directory set once for the shell
    3. the default model where `numpybert fetch` puts it:
       - numpybert run from a source checkout (pip install -e .): CHECKOUT/weights/all-MiniLM-L6-v2,
         so the README's commands work from any directory;
       - otherwise (a wheel): $XDG_DATA_HOME/numpybert/all-MiniLM-L6-v2
         (~/.local/share/numpybert/all-MiniLM-L6-v2 when XDG_DATA_HOME is unset).

"A checkout" is decided by where the package is imported from, never by the current directory,
so `numpybert fetch` and every later command agree whatever directory they run in.
"""

import os
import pathlib

from ..errors import WeightsNotFoundError

DEFAULT_NAME = "all-MiniLM-L6-v2"
FETCHABLE = (DEFAULT_NAME, "all-mpnet-base-v2")  # what `numpybert fetch [NAME]` can put in place
ENV_VAR = "NUMPYBERT_MODEL"


def checkout_root():
    """The source checkout numpybert is imported from (a pyproject.toml naming numpybert next to
    the package), or None for an installed wheel."""
    root = pathlib.Path(__file__).resolve().parent.parent.parent
    pyproject = root / "pyproject.toml"
    try:
        return root if 'name = "numpybert"' in pyproject.read_text(encoding="utf-8") else None
    except OSError:
        return None


def data_dir() -> pathlib.Path:
    """The per-user data directory: $XDG_DATA_HOME/numpybert, else ~/.local/share/numpybert."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return pathlib.Path(base) / "numpybert"


def default_model_dir(name: str = DEFAULT_NAME) -> pathlib.Path:
    """Where `numpybert fetch [name]` puts a model (and where it is looked for): the default one unless named."""
    root = checkout_root()
    return root / "weights" / name if root is not None else data_dir() / name


def resolve_model(model_dir=None, cli=True) -> str:
    """The model directory to load: `model_dir` when given, else $NUMPYBERT_MODEL, else the
    fetched default. A missing default is a WeightsNotFoundError listing the places looked, in the
    caller's words: the command line's (--model DIR) or Python's (`cli=False`: numpybert.load(DIR))."""
    if model_dir is not None:
        return os.fsdecode(model_dir)
    env = os.environ.get(ENV_VAR)
    if env:
        if not os.path.isdir(env) and not (env.endswith(".gguf") and os.path.isfile(env)):  # or a GGUF file
            raise WeightsNotFoundError(f"${ENV_VAR}={env}: no such model directory")
        return env
    default = default_model_dir()
    if not (default / "config.json").is_file():
        given, other = ("--model (not given), ", "pass --model DIR") if cli else ("", "pass a directory: numpybert.load(DIR)")
        raise WeightsNotFoundError(f"no model given and none found: looked at {given}${ENV_VAR} (not set), "
                                   f"{default} (empty); run `numpybert fetch` in a shell to put {DEFAULT_NAME} "
                                   f"there, or {other}")
    return _short(default)


def fetched_default(name: str = DEFAULT_NAME) -> str | None:
    """The directory of a model (the default one unless named) when `numpybert fetch` put it in place, else None."""
    default = default_model_dir(name)
    return _short(default) if (default / "config.json").is_file() else None


def not_found_hint(path: str) -> str:
    """For a missing model directory naming the default model (the README's weights/all-MiniLM-L6-v2
    from another directory, or a wheel's user: fetch puts it in the data directory): where
    `numpybert fetch` put it, or where it would."""
    if DEFAULT_NAME.lower() not in path.lower():
        return ""
    fetched = fetched_default()
    if fetched is not None:
        return (f" (`numpybert fetch` put {DEFAULT_NAME} in {fetched}: load that directory, or give no model "
                "and the default is found there)")
    return f" (run `numpybert fetch` in a shell: it puts {DEFAULT_NAME} in {default_model_dir()}, the default)"


def _short(path: pathlib.Path) -> str:
    """The path relative to the current directory when it lies below it (weights/all-MiniLM-L6-v2
    in the checkout, as the docs print it), else absolute."""
    try:
        return str(path.relative_to(pathlib.Path.cwd()))
    except (ValueError, OSError):
        return str(path)
