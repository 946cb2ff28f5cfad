"""The fast engine: BERT's forward pass with blocks, threads and fused weights (must equal numpybert/reference.py)."""
