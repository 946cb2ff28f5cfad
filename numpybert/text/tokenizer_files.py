"""Reading a model directory's tokenizer: tokenizer.json, or BERT's pipeline built from vocab.txt,
with the special tokens and model_max_length of special_tokens_map.json / tokenizer_config.json."""

from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from ..errors import ConfigError, WeightsNotFoundError
from ..loading import keras
from ..loading.config import read_json_object

REQUIRED_SPECIAL_TOKENS = ("cls_token", "sep_token", "unk_token")  # [PAD] only when padding is needed
DEFAULT_SPECIAL_TOKENS = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                          "unk_token": "[UNK]", "mask_token": "[MASK]"}


def read_tokenizer(model_dir) -> tuple:
    """(tokenizers.Tokenizer, special token names, source file, model_max_length or None) of a model
    directory. Uses tokenizer.json when present; otherwise builds BERT's WordPiece pipeline from
    vocab.txt with do_lower_case / strip_accents / tokenize_chinese_chars from tokenizer_config.json
    (lowercase unless the config says otherwise)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise WeightsNotFoundError(f"model directory {str(model_dir)!r} does not exist")
    config = _read_tokenizer_config(model_dir)
    special = _special_token_names(model_dir, config)
    limit = config.get("model_max_length")
    limit = int(limit) if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit < 1e9 else None
    tok_json, vocab_txt = model_dir / "tokenizer.json", model_dir / "vocab.txt"
    if (preset := keras.tokenizer_files(model_dir)) is not None:  # keras-hub: its tokenizer.json is Keras' own
        vocabulary, flags = preset
        return _wordpiece_from_vocab(Path(vocabulary), dict(config, **flags), special), special, vocabulary, limit
    if tok_json.is_file():
        try:
            return Tokenizer.from_file(str(tok_json)), special, str(tok_json), limit
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ConfigError(f"cannot read {tok_json}: {exc}") from exc
    if vocab_txt.is_file():
        return _wordpiece_from_vocab(vocab_txt, config, special), special, str(vocab_txt), limit
    raise WeightsNotFoundError(f"no tokenizer.json or vocab.txt in {str(model_dir)!r}")


def _read_json(path: Path) -> dict:
    """A JSON object from path, or {} when the file is absent."""
    return read_json_object(path, path.name, absent={})


def _read_tokenizer_config(model_dir: Path) -> dict:
    return _read_json(model_dir / "tokenizer_config.json")


def _token_content(value: Any) -> str | None:
    """A special token from a config: a plain string or an AddedToken dict {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_token_names(model_dir: Path, config: dict) -> dict[str, str]:
    """Special token strings: defaults, then special_tokens_map.json, then tokenizer_config.json."""
    names = dict(DEFAULT_SPECIAL_TOKENS)
    for source in (_read_json(model_dir / "special_tokens_map.json"), config):
        for key in DEFAULT_SPECIAL_TOKENS:
            content = _token_content(source.get(key))
            if content:
                names[key] = content
    return names


def special_token_ids(tokenizer: Tokenizer, names: dict[str, str], source: str) -> dict[str, int]:
    """Ids of the special tokens; a required one missing from the vocabulary is a ConfigError."""
    ids = {}
    for key, token in names.items():
        token_id = tokenizer.token_to_id(token)
        if token_id is None and key in REQUIRED_SPECIAL_TOKENS:
            raise ConfigError(f"the vocabulary of {source} has no {token} token ({key}); BERT needs it")
        if token_id is not None:
            ids[key] = token_id
    return ids


def _config_flag(config: dict, key: str, default: bool | None) -> bool | None:
    value = config.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"tokenizer_config.json: {key} must be true/false/null, got {value!r}")
    return value


def _wordpiece_from_vocab(vocab_txt: Path, config: dict, special: dict[str, str]) -> Tokenizer:
    """BERT's pipeline (as transformers builds it) from vocab.txt and tokenizer_config.json."""
    lowercase = _config_flag(config, "do_lower_case", True)
    try:
        model = WordPiece.from_file(str(vocab_txt), unk_token=special["unk_token"], max_input_chars_per_word=100)
    except Exception as exc:
        raise ConfigError(f"cannot read {vocab_txt}: {exc}") from exc
    return bert_pipeline(model, special, lowercase, _config_flag(config, "strip_accents", None),
                         _config_flag(config, "tokenize_chinese_chars", True))


def bert_pipeline(model: WordPiece, special: dict[str, str], lowercase: bool, strip_accents: bool | None,
                  chinese: bool = True) -> Tokenizer:
    """BERT's pipeline around a WordPiece model, as transformers builds it: BertNormalizer (strip_accents
    None follows lowercase), BertPreTokenizer, the special tokens and the [CLS] A [SEP] (B [SEP]) template."""
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=chinese, strip_accents=strip_accents, lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    present = [t for t in special.values() if tokenizer.token_to_id(t) is not None]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in present])
    cls_token, sep_token = special["cls_token"], special["sep_token"]
    if cls_token in present and sep_token in present:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[(cls_token, tokenizer.token_to_id(cls_token)),
                            (sep_token, tokenizer.token_to_id(sep_token))])
    return tokenizer
