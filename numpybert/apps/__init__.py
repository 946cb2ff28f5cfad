"""What BERT is used for: sentence embeddings (encode.py: `SentenceEncoder`, with st_config.py,
pooling.py, batching.py, long.py), the task heads (heads.py), corpus embedding (corpus.py,
outputs.py). `BertModel` (numpybert/api.py) reaches apps through the names below only."""

from .encode import SentenceEncoder
from .heads import classify, fill_mask, next_sentence
from .ids import encode_ids

__all__ = ["SentenceEncoder", "classify", "fill_mask", "next_sentence", "encode_ids"]
