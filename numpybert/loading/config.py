"""BertConfig: the fields of config.json that change the math, read strictly.

Only what the forward pass needs is kept; everything else in config.json (dropout rates,
initializer range, `architectures`, ...) is ignored, because it does not change inference.
Anything numpybert cannot compute faithfully is refused here, naming the field and value,
rather than silently computed the wrong way.

The first section opens files defensively (checkpoint.py reuses it for the weights): the
open never blocks (a FIFO named config.json would hang a plain `open`), anything but a
regular file is refused, and JSON with duplicate keys or absurd nesting is refused.
"""

import dataclasses
import json
import os
import stat

from . import family as families
from ..errors import ConfigError, WeightsNotFoundError
from ..util import positive_int

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")
CONFIG_CAP = 4 * 1024 * 1024  # a BERT config.json is ~1 KB; even a huge id2label stays far below
MAX_LAYERS = 1024  # the loader lists every layer's tensors: a corrupt 10**9 would exhaust memory


# ----------------------------------------------------------------------------- safe file reading

_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path, what: str, error: type):
    """Open a regular file for binary reading, or raise: WeightsNotFoundError when it does not
    exist, `error` (naming the path) when it is a directory, FIFO, device, or cannot be opened.
    O_NONBLOCK makes opening a FIFO return at once; it changes nothing for a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise WeightsNotFoundError(f"{what} not found: {path}") from None
    except OSError as e:
        raise error(f"{path}: cannot open the {what} ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise error(f"{path}: is {kind}, not a regular file")
    return os.fdopen(fd, "rb")


def _refuse_duplicates(pairs, source, error):
    """object_pairs_hook for json: the json module would silently keep the last duplicate."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise error(f"{source}: key {key!r} appears twice (a JSON reader would silently keep the last one)")
        obj[key] = value
    return obj


def parse_json(raw: bytes, source, error: type):
    """Strict JSON: UTF-8, no duplicate keys; every failure (including nesting deep enough to
    exhaust Python's recursion, or an integer of thousands of digits) becomes `error`."""
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=lambda p: _refuse_duplicates(p, source, error))
    except error:  # a duplicate key, already worded
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
        raise error(f"{source}: not valid JSON ({reason})") from None


def read_json(path, what: str, error: type, cap: int = CONFIG_CAP):
    """Read a small JSON file strictly (see `open_regular` and `parse_json`)."""
    with open_regular(path, what, error) as f:
        raw = f.read(cap + 1)
    if len(raw) > cap:
        raise error(f"{path}: more than {cap} bytes; a {what} is a few KB (wrong file?)")
    return parse_json(raw, path, error)


def read_json_object(path, what: str, error: type = ConfigError, absent=None) -> dict:
    """A small JSON file holding an object (see `read_json`); `absent` (e.g. {}) is returned
    when the file does not exist, else that is an error too."""
    if absent is not None and not os.path.lexists(path):
        return absent
    data = read_json(path, what, error)
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} must hold a JSON object, got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------- the config

@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768  # H
    num_hidden_layers: int = 12  # L
    num_attention_heads: int = 12  # N
    intermediate_size: int = 3072  # I
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"
    id2label: dict | None = None  # only used by a classification head
    model_type: str = families.DEFAULT  # a record of the family registry (numpybert/loading/family.py)
    embedding_size: int | None = None  # E, ELECTRA's: embeddings of size E, then `embeddings_project` E -> H
    sinusoidal_pos_embds: bool = False  # DistilBERT: the position table was initialised as sin/cos (stored)
    relative_attention_num_buckets: int = 32  # MPNet: rows of encoder.relative_attention_bias

    @property
    def family(self) -> families.Family:
        """What this model_type is, as differences from BERT (numpybert/loading/family.py)."""
        return families.get(self.model_type)

    @property
    def embedding_dim(self) -> int:  # E: the width of the embedding tables (H except for ELECTRA)
        return self.embedding_size or self.hidden_size

    @property
    def padding_idx(self) -> int | None:
        """RoBERTa/XLM-R: pad_token_id (MPNet: 1), from which positions count (real tokens at padding_idx + 1,
        + 2, ..., padding at padding_idx); None for the others (positions 0, 1, ...)."""
        family = self.family
        if not family.positions_from_ids:
            return None
        return self.pad_token_id if family.fixed_padding_idx is None else family.fixed_padding_idx

    @property
    def max_length(self) -> int:
        """The most tokens a sequence may have: max_position_embeddings, less RoBERTa's offset (514 -> 512)."""
        return self.max_position_embeddings - (0 if self.padding_idx is None else self.padding_idx + 1)

    @property
    def head_size(self) -> int:  # D = H / N
        return self.hidden_size // self.num_attention_heads

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings"):
            positive_int(f"config field {name}", getattr(self, name), ConfigError)
        if not isinstance(self.model_type, str) or self.model_type not in families.FAMILIES:
            raise ConfigError(families.refusal(self.model_type))
        if self.family.token_types:  # DistilBERT and MPNet have no token-type table: type_vocab_size 0
            positive_int("config field type_vocab_size", self.type_vocab_size, ConfigError)
        if self.family.relative_attention:
            positive_int("config field relative_attention_num_buckets", self.relative_attention_num_buckets,
                         ConfigError)
        if self.embedding_size is not None:
            positive_int("config field embedding_size", self.embedding_size, ConfigError)
        if self.num_hidden_layers > MAX_LAYERS:
            raise ConfigError(f"config field num_hidden_layers={self.num_hidden_layers}: more than {MAX_LAYERS}; "
                              "no BERT is that deep (corrupt config?)")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config field hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}")
        if not isinstance(self.hidden_act, str) or self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ConfigError(f"config field hidden_act={self.hidden_act!r} is not supported "
                              f"(supported: {', '.join(SUPPORTED_ACTIVATIONS)})")
        eps = self.layer_norm_eps
        # any finite positive number, as transformers (its batching tests use 1.0)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
            raise ConfigError(f"config field layer_norm_eps={eps!r}: expected a finite positive number")
        if self.position_embedding_type != "absolute":
            raise ConfigError(f"config field position_embedding_type={self.position_embedding_type!r} "
                              "is not supported (only 'absolute'; relative_key* was removed in transformers 5)")
        pad = self.pad_token_id
        if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
            raise ConfigError(f"config field pad_token_id={pad!r}: expected a non-negative integer or null")
        if self.max_length < 1:
            raise ConfigError(f"config field max_position_embeddings={self.max_position_embeddings} leaves no "
                              f"position after {self.model_type}'s offset pad_token_id + 1 = {pad + 1}")
        _check_labels(self.id2label)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.json") -> "BertConfig":
        """Build from a parsed config.json, refusing architectures numpybert does not compute."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        d = family_fields(d, source)
        for flag in ("is_decoder", "add_cross_attention"):
            if d.get(flag):
                raise ConfigError(f"{source}: config field {flag}={d[flag]!r} is not supported "
                                  "(numpybert computes the bidirectional encoder only)")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in fields}
        if kwargs.get("pad_token_id") is None:
            kwargs.pop("pad_token_id", None)
        try:
            kwargs["id2label"] = _int_keys(kwargs.get("id2label"))
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path: str) -> "BertConfig":
        """Read config.json; a missing file says so (a model directory needs config.json)."""
        return cls.from_dict(read_json(path, "config.json", ConfigError), source=path)

    def summary(self) -> str:
        family = "" if self.model_type == families.DEFAULT else f"{self.model_type}: "
        extra = f", E={self.embedding_size}" if self.embedding_size else ""
        return (f"{family}L={self.num_hidden_layers} layers, H={self.hidden_size}, N={self.num_attention_heads} heads "
                f"(D={self.head_size}), I={self.intermediate_size}, vocab={self.vocab_size}, "
                f"max_positions={self.max_position_embeddings}, type_vocab={self.type_vocab_size}, "
                f"act={self.hidden_act}, eps={self.layer_norm_eps:g}{extra}")


def family_fields(d: dict, source: str) -> dict:
    """config.json of any family member in BertConfig's field names (one-line error for other models),
    as the family registry says: DistilBERT's dim/n_layers/... names, fixed values the modeling code
    hard-codes (DistilBERT's LayerNorm eps 1e-12, no token types), defaults of their config classes
    (ELECTRA's embedding_size 128); a field of another family member is dropped."""
    model_type = d.get("model_type", families.DEFAULT)
    if not isinstance(model_type, str) or model_type not in families.FAMILIES:
        raise ConfigError(f"{source}: {families.refusal(model_type)}")
    family = families.get(model_type)
    renames = dict(family.config_fields)
    d = {renames.get(k, k): v for k, v in d.items() if k not in renames.values()}
    d.update(family.config_fixed, model_type=model_type)
    for field, value in family.config_defaults:
        d.setdefault(field, value)
    for field in families.OWN_FIELDS - set(family.config_own):  # another member's field: not this one's math
        d.pop(field, None)
    if d.get("embedding_size") is not None and d["embedding_size"] == d.get("hidden_size", 768):
        d["embedding_size"] = None  # no embeddings_project when E == H (as transformers)
    return d


def _int_keys(id2label):
    """config.json stores id2label with string keys ("0": "NEGATIVE"); make them ints."""
    if id2label is None:
        return None
    if not isinstance(id2label, dict):
        raise ConfigError(f"config field id2label={id2label!r}: expected an object {{\"0\": label, ...}}")
    try:
        return {int(k): v for k, v in id2label.items()}
    except ValueError:
        raise ConfigError(f"config field id2label has a key that is not an integer: {list(id2label)[:5]}") from None


def _check_labels(id2label):
    if id2label is None:
        return
    if not isinstance(id2label, dict) or set(id2label) != set(range(len(id2label))):
        keys = list(id2label)[:5] if isinstance(id2label, dict) else id2label
        raise ConfigError(f"config field id2label: keys must be 0..n-1 (the classifier's rows), got {keys!r}")
