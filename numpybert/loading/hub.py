"""Hub model names -> a directory in the local Hugging Face cache, as huggingface_hub lays it out.

    numpybert.load("sentence-transformers/all-MiniLM-L6-v2")   # after `hf download` put it in the cache

Never goes to the network: a name resolves only when the model is already in the cache.
The cache is where huggingface_hub (and so transformers and sentence-transformers) puts it:

    $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE (its older name), else $HF_HOME/hub,
    else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub
      models--{org}--{name}/refs/{revision}      a file holding a commit hash ("main" by default)
      models--{org}--{name}/snapshots/{commit}/  the files of that commit (symlinks into blobs/)

A name without an org (`all-MiniLM-L6-v2`) is looked up as itself, then as
`sentence-transformers/{name}`, as `SentenceTransformer(name)` does.

The default model's names (`sentence-transformers/all-MiniLM-L6-v2`, `all-MiniLM-L6-v2`) with no
revision resolve, in this order: a local directory of that name, the Hugging Face cache, then the
copy `numpybert fetch` put in place (numpybert/loading/locate.py): the same model files.
"""

import os
import re

from ..errors import InputValueError, WeightsNotFoundError
from . import locate

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_REPO_ID = f"sentence-transformers/{locate.DEFAULT_NAME}"  # what `numpybert fetch` installs


def hub_cache_dir() -> str:
    """The directory huggingface_hub caches models in (its constants.HF_HUB_CACHE)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expanduser(os.environ[var])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache",
                                                         "huggingface")
    return os.path.join(os.path.expanduser(hf_home), "hub")


def looks_like_hub_name(name: str) -> bool:
    """`org/name` or `name`, as Hub repo ids are spelled (not a path: no leading ./, / or ~)."""
    return bool(_NAME.match(name)) and ".." not in name


def repo_folder(repo_id: str) -> str:
    """huggingface_hub's folder name for a model repo: models--{org}--{name}."""
    return "models--" + repo_id.replace("/", "--")


def candidate_repo_ids(name: str) -> list:
    """The repo ids a name may mean: itself; a bare name also as sentence-transformers/{name}."""
    return [name] if "/" in name else [name, f"sentence-transformers/{name}"]


def snapshot_dir(cache: str, repo_id: str, revision: str = "main") -> str | None:
    """The snapshot directory of repo_id at revision (a ref name or a commit hash), or None."""
    repo = os.path.join(cache, repo_folder(repo_id))
    commit = revision if _COMMIT.match(revision) else None
    ref = os.path.join(repo, "refs", *revision.split("/"))
    if commit is None and os.path.isfile(ref):
        with open(ref, encoding="utf-8") as f:
            commit = f.read().strip()
    if not commit:
        return None
    path = os.path.join(repo, "snapshots", commit)
    return path if os.path.isfile(os.path.join(path, "config.json")) else None


def resolve(name: str, revision: str | None = None) -> str:
    """A Hub name -> its snapshot directory in the local cache; WeightsNotFoundError naming every
    place looked, and the commands that would put the model there, when it is not cached."""
    if not isinstance(revision, (str, type(None))) or revision == "":
        raise InputValueError(f"revision={revision!r}: expected a branch, tag or commit hash")
    fetchable = [n for n in locate.FETCHABLE if f"sentence-transformers/{n}" in candidate_repo_ids(name)]
    fetched = revision is None and bool(fetchable)  # the copy `numpybert fetch` put in place may serve
    revision = revision or "main"
    cache = hub_cache_dir()
    looked = [f"./{name} (no such directory)"]
    for repo_id in candidate_repo_ids(name):
        path = snapshot_dir(cache, repo_id, revision)
        if path is not None:
            return path
        looked.append(os.path.join(cache, repo_folder(repo_id), "refs", revision))
    if fetched:
        path = locate.fetched_default(fetchable[0])
        if path is not None:
            return path
        looked.append(f"{locate.default_model_dir(fetchable[0])} (where `numpybert fetch` puts it)")
    repo_id = candidate_repo_ids(name)[-1]
    fetch = ("" if not fetched else " or `numpybert fetch`" if fetchable[0] == locate.DEFAULT_NAME
             else f" or `numpybert fetch {fetchable[0]}`")
    raise WeightsNotFoundError(
        f"model {name!r} (revision {revision}) not found; looked in: {'; '.join(looked)}. numpybert never "
        f"downloads: put it in the cache with `hf download {repo_id}` (huggingface_hub){fetch}, or pass a "
        f"local directory (config.json + model.safetensors){locate.not_found_hint(name) if not fetched else ''}")
