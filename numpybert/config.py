"""BertConfig: the fields of config.json that change the math, read strictly.

Only what the forward pass needs is kept; everything else in config.json (dropout rates,
initializer range, `architectures`, ...) is ignored, because it does not change inference.
Anything numpybert cannot compute faithfully is refused here, naming the field and value,
rather than silently computed the wrong way.
"""

import dataclasses
import json
import os

from .errors import ConfigError, WeightsNotFoundError

SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


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

    @property
    def head_size(self) -> int:  # D = H / N
        return self.hidden_size // self.num_attention_heads

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"config field {name}={value!r}: expected a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"config field hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ConfigError(f"config field hidden_act={self.hidden_act!r} is not supported "
                              f"(supported: {', '.join(SUPPORTED_ACTIVATIONS)})")
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < 1:
            raise ConfigError(f"config field layer_norm_eps={eps!r}: expected a number in [0, 1)")
        if self.position_embedding_type != "absolute":
            raise ConfigError(f"config field position_embedding_type={self.position_embedding_type!r} "
                              "is not supported (only 'absolute'; relative_key* was removed in transformers 5)")

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.json") -> "BertConfig":
        """Build from a parsed config.json, refusing architectures numpybert does not compute."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        if d.get("model_type", "bert") != "bert":
            raise ConfigError(f"{source}: config field model_type={d['model_type']!r} is not 'bert'")
        for flag in ("is_decoder", "add_cross_attention"):
            if d.get(flag):
                raise ConfigError(f"{source}: config field {flag}={d[flag]!r} is not supported "
                                  "(numpybert computes the bidirectional encoder only)")
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in fields}
        if isinstance(kwargs.get("id2label"), dict):
            kwargs["id2label"] = {int(k): v for k, v in kwargs["id2label"].items()}
        if kwargs.get("pad_token_id") is None:
            kwargs.pop("pad_token_id", None)
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json(cls, path: str) -> "BertConfig":
        if not os.path.isfile(path):
            raise WeightsNotFoundError(f"config not found: {path} (a model directory needs config.json)")
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=path)

    def summary(self) -> str:
        return (f"L={self.num_hidden_layers} layers, H={self.hidden_size}, N={self.num_attention_heads} heads "
                f"(D={self.head_size}), I={self.intermediate_size}, vocab={self.vocab_size}, "
                f"max_positions={self.max_position_embeddings}, type_vocab={self.type_vocab_size}, "
                f"act={self.hidden_act}, eps={self.layer_norm_eps:g}")
