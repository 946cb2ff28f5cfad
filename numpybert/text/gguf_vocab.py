"""A GGUF file's own tokenizer: llama.cpp's `tokenizer.ggml.*` metadata back into a `tokenizers` WordPiece.

llama.cpp's converter stores BERT's WordPiece vocabulary in a "phantom space" form (conversion/bert.py):
a word-start piece gets a `▁` prefix, a continuation piece loses its `##`, control tokens ([CLS], [SEP],
[PAD], [UNK], [MASK]: token type 3) stay as they are. Undoing it gives the original vocab.txt, id for
id; the normalisation comes from the flags the file states (`tokenizer.ggml.normalizer.lowercase`,
`.strip_accents`); the special tokens from `tokenizer.ggml.{bos,seperator,unknown,padding,mask}_token_id`
(BERT's [CLS] is written as the BOS token, [SEP] as the separator). What the file does not say
(Chinese-character splitting, the accents flag on older files) takes BERT's defaults, listed in `notes`.

RoBERTa's byte-level BPE is stored as tokenizer.ggml.model "gpt2": the tokens as they are (byte-level
strings, `Ġ` for a space) and `tokenizer.ggml.merges` ("a b" per merge, in rank order); rebuilt as
transformers' RobertaTokenizerFast is: BPE, ByteLevel pre-tokenizer (no prefix space: the file does not
say, RoBERTa's default), control tokens special, <s> A </s> (</s> B </s>).
"""

from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

from ..errors import ConfigError
from ..loading.family import GGUF_BYTE_BPE, GGUF_REFUSED_TOKENIZERS, GGUF_WORDPIECE
from .tokenizer_files import DEFAULT_SPECIAL_TOKENS, bert_pipeline

PHANTOM = "\u2581"  # ▁, llama.cpp's mark of a word start
CONTROL = 3  # gguf.TokenType.CONTROL
SPECIAL_IDS = {"cls_token": "tokenizer.ggml.bos_token_id", "sep_token": "tokenizer.ggml.seperator_token_id",
               "unk_token": "tokenizer.ggml.unknown_token_id", "pad_token": "tokenizer.ggml.padding_token_id",
               "mask_token": "tokenizer.ggml.mask_token_id"}  # the spelling "seperator" is llama.cpp's
FALLBACK_IDS = {"sep_token": "tokenizer.ggml.eos_token_id"}
LOWERCASE, STRIP_ACCENTS = "tokenizer.ggml.normalizer.lowercase", "tokenizer.ggml.normalizer.strip_accents"


def original_piece(token: str, token_type: int) -> str:
    """vocab.txt's spelling of a phantom-space token: `▁word` -> `word`, `ing` -> `##ing`."""
    if token_type == CONTROL:
        return token
    return token[1:] if token[:1] == PHANTOM else "##" + token


def wordpiece_vocab(meta: dict, source: str) -> dict:
    """{vocab.txt piece: id} from tokenizer.ggml.tokens and .token_type."""
    tokens, types = meta.get("tokenizer.ggml.tokens"), meta.get("tokenizer.ggml.token_type")
    if not isinstance(tokens, list) or not tokens:
        raise ConfigError(f"{source}: metadata field 'tokenizer.ggml.tokens' is missing or empty")
    if not isinstance(types, list) or len(types) != len(tokens):
        raise ConfigError(f"{source}: metadata field 'tokenizer.ggml.token_type' must list one type per token "
                          f"({len(tokens)})")
    vocab = {original_piece(token, kind): i for i, (token, kind) in enumerate(zip(tokens, types))}
    if len(vocab) < len(tokens):  # two tokens give one piece: name the first repeat
        seen = {}
        for i, (token, kind) in enumerate(zip(tokens, types)):
            piece = original_piece(token, kind)
            if piece in seen:
                raise ConfigError(f"{source}: tokenizer.ggml.tokens[{i}] {token!r} is {piece!r} again "
                                  f"(id {seen[piece]})")
            seen[piece] = i
    return vocab


def special_names(meta: dict, source: str) -> dict:
    """The special tokens' strings, by their ids in the metadata (BERT's names when an id is absent)."""
    tokens, names = meta["tokenizer.ggml.tokens"], dict(DEFAULT_SPECIAL_TOKENS)
    for key, field in SPECIAL_IDS.items():
        token_id = meta.get(field, meta.get(FALLBACK_IDS.get(key, "")))
        if isinstance(token_id, int):
            if not 0 <= token_id < len(tokens):
                raise ConfigError(f"{source}: metadata field {field!r}={token_id} is outside the vocabulary "
                                  f"(0..{len(tokens) - 1})")
            names[key] = tokens[token_id]
    return names


def byte_bpe_tokenizer(meta: dict, source: str):
    """(tokenizers.Tokenizer, special token names, notes) of a "gpt2" (RoBERTa byte-level BPE) vocabulary."""
    tokens, types, merges = (meta.get(f"tokenizer.ggml.{k}") for k in ("tokens", "token_type", "merges"))
    for key, value in (("tokens", tokens), ("merges", merges)):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: metadata field 'tokenizer.ggml.{key}' is missing or not a list of strings")
    if not isinstance(types, list) or len(types) != len(tokens):
        raise ConfigError(f"{source}: metadata field 'tokenizer.ggml.token_type' must list one type per token "
                          f"({len(tokens)})")
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) < len(tokens):
        i = next(i for i, t in enumerate(tokens) if vocab[t] != i)
        raise ConfigError(f"{source}: tokenizer.ggml.tokens[{vocab[tokens[i]]}] {tokens[i]!r} appears twice")
    pairs = [tuple(m.split(" ")) for m in merges]
    if (bad := next((i for i, p in enumerate(pairs) if len(p) != 2 or "".join(p) not in vocab), None)) is not None:
        raise ConfigError(f"{source}: tokenizer.ggml.merges[{bad}] {merges[bad]!r} is not two tokens whose join "
                          "is a token")
    special = special_names(meta, source)
    tokenizer = Tokenizer(BPE(vocab, pairs))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    control = [token for token, kind in zip(tokens, types) if kind == CONTROL]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    cls_token, sep_token = special["cls_token"], special["sep_token"]
    tokenizer.post_processor = processors.RobertaProcessing(
        (sep_token, vocab[sep_token]), (cls_token, vocab[cls_token]), trim_offsets=True, add_prefix_space=False)
    notes = ["byte-level BPE without a prefix space (not stated in GGUF metadata; RoBERTa's default)"]
    return tokenizer, special, notes


def gguf_tokenizer(meta: dict, source: str):
    """(tokenizers.Tokenizer, special token names, notes) of a GGUF: tokenizer.ggml.model "bert" (WordPiece)
    or "gpt2" (RoBERTa's byte-level BPE)."""
    model = meta.get("tokenizer.ggml.model")
    if model == GGUF_BYTE_BPE:
        return byte_bpe_tokenizer(meta, source)
    if model != GGUF_WORDPIECE:
        why = GGUF_REFUSED_TOKENIZERS.get(model, "an unknown tokenizer model")
        raise ConfigError(f"{source}: tokenizer.ggml.model={model!r} is not supported: {why} (numpybert rebuilds "
                          f"{GGUF_WORDPIECE!r} WordPiece and {GGUF_BYTE_BPE!r} byte-level BPE vocabularies)")
    vocab, special = wordpiece_vocab(meta, source), special_names(meta, source)
    notes = []
    lowercase = meta.get(LOWERCASE)
    if not isinstance(lowercase, bool):
        notes.append(f"{LOWERCASE} absent: lowercase (BERT's default, and older llama.cpp's)")
        lowercase = True
    strip = meta.get(STRIP_ACCENTS)
    strip = strip if isinstance(strip, bool) else None
    if strip is None:
        notes.append(f"{STRIP_ACCENTS} absent: accents stripped as lowercase says (BertNormalizer's default)")
    notes.append("Chinese characters split into single tokens (not stated in GGUF metadata; BERT's default)")
    wordpiece = WordPiece(vocab, unk_token=special["unk_token"], max_input_chars_per_word=100)
    return bert_pipeline(wordpiece, special, lowercase, strip), special, notes
