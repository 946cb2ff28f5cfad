"""Reading golden files: reference tensors exported from PyTorch by scripts/export_golden.py.

A golden file is self-contained (as llm.c's): a safetensors file holding the inputs
(`inputs.*`), the reference outputs (`outputs.*`), optionally every intermediate
(`trace.*`), and a header saying how it was made (format version, torch and transformers
versions, attention implementation, dtype, model and its sha256, the regenerate command).
"""

import dataclasses

from ..loading.checkpoint import read_safetensors
from ..errors import GoldenError

FORMAT = "numpybert-golden"
FORMAT_VERSION = "1"


@dataclasses.dataclass
class Golden:
    path: str
    metadata: dict
    inputs: dict  # input_ids, attention_mask, token_type_ids: int64 [B, T]
    outputs: dict  # last_hidden_state, pooler_output, hidden_states.{i}, attentions.{i}, ...
    trace: dict  # recorded intermediates by name, in forward order

    @property
    def command(self) -> str:
        return self.metadata.get("command", "python scripts/export_golden.py all")


def read_golden(path) -> Golden:
    """Read and check a golden file; a stale format names the command that regenerates it."""
    tensors, metadata = read_safetensors(path)
    command = metadata.get("command", "python scripts/export_golden.py all")
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise GoldenError(f"{path}: golden format {metadata.get('format')!r} version "
                          f"{metadata.get('format_version')!r}, this numpybert reads {FORMAT!r} version "
                          f"{FORMAT_VERSION!r}. Regenerate it: {command}")
    groups = {"inputs": {}, "outputs": {}, "trace": {}}
    for name, (_, array) in tensors.items():
        group, _, rest = name.partition(".")
        if group not in groups:
            raise GoldenError(f"{path}: unexpected tensor {name!r} (expected inputs.*, outputs.*, trace.*)")
        groups[group][rest] = array
    if "input_ids" not in groups["inputs"]:
        raise GoldenError(f"{path}: no inputs.input_ids. Regenerate it: {command}")
    return Golden(path, metadata, **groups)
