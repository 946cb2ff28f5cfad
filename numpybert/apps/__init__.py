"""What BERT is used for: sentence embeddings (encode.py: `SentenceEncoder`, with st_config.py,
pooling.py, batching.py, long.py), the task heads (heads.py), corpus embedding (corpus.py,
outputs.py). `BertModel` (numpybert/api.py) reaches apps through the names below only."""

from .encode import SentenceEncoder
from .heads import classify, fill_mask, next_sentence
from .ids import encode_ids
from .st_config import gguf_settings

__all__ = ["SentenceEncoder", "classify", "encode_ids", "fill_mask", "gguf_settings", "next_sentence"]
