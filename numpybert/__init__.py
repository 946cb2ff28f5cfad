"""numpybert: BERT (HuggingFace BertModel semantics) in plain NumPy, loaded from safetensors.

    import numpybert
    model = numpybert.load("weights/all-MiniLM-L6-v2")
    out = model(**model.tokenize(["Hello world"]))
    out.last_hidden_state, out.pooler_output

The math is in `numpybert/reference.py`, the textbook: read it top to bottom, in the order of
the paper (its `pooler` answers "why is pooled_output not last_hidden_state[:, 0]?").
`numpybert.load(dir, engine="reference")` runs it; the default `engine="fast"` runs the same
model from `numpybert/engine/`, tuned for speed and tested to give the same numbers.
"""

__version__ = "0.1.0"  # first: errors.install_hint reads it while the package imports

from .api import BertModel, BertOutput, load
from .loading.config import BertConfig
from .embedder import Embedder
from .errors import (ConfigError, GoldenError, InputTypeError, InputValueError, MissingExtraError,
                     MissingWeightsError, NumpybertError, OutputError, WeightsError, WeightsNotFoundError)
from .engine.threads import set_threads

DEFAULT_MODEL = "weights/all-MiniLM-L6-v2"

__all__ = ["load", "BertModel", "BertOutput", "BertConfig", "Embedder", "NumpybertError", "ConfigError", "WeightsError",
           "WeightsNotFoundError", "MissingWeightsError", "InputValueError", "InputTypeError", "GoldenError",
           "OutputError", "MissingExtraError",
           "DEFAULT_MODEL", "set_threads"]
from .apps.train import AdamW, add_head, save_pretrained, value_and_grad  # training (issue 29): numpybert/reference_backward.py

__all__ += ["value_and_grad", "AdamW", "save_pretrained", "add_head"]
