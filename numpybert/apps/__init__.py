"""What BERT is used for: task heads, sentence embeddings, corpus embedding. Uses the public API."""
