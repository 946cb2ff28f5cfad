"""Parity audits: compare, oracle, conventions, golden files.

The names below are the audit's public face (`from numpybert import audit; audit.audit(...)`);
`onnx`, `tokenizer_audit` and `torch_bridge` are imported as modules when needed (extras).
"""

from .. import __version__
from ..loading.checkpoint import weights_sha256
from .compare import (CONVENTION_SWITCHES, MODEL_OUTPUTS, AuditReport, Change, ConventionRow, OracleRow,
                      TensorReport, audit, change, check_golden_model, compare, compare_conventions,
                      compare_tensor, conventions_json, first_divergence, hidden_states_within_torch,
                      is_hidden_state, live_reference, model_conventions, numpybert_tensors, oracle_json,
                      oracle_lines, oracle_rows, output_tensors, random_inputs, reference_tensors, render_conventions,
                      render_table, report_json, require_torch_bridge, tensor_json, with_fully_masked_row)
from .golden import Golden, read_golden, write_golden  # the interchange format: docs/golden-format.md
from .stats import REL_FLOOR, TOLERANCES, Stats, Tolerance, error_stats, real_positions, tolerance_scale

__all__ = [
    "__version__", "weights_sha256",
    "CONVENTION_SWITCHES", "MODEL_OUTPUTS", "AuditReport", "Change", "ConventionRow", "OracleRow", "TensorReport",
    "audit", "change", "check_golden_model", "compare", "compare_conventions", "compare_tensor", "conventions_json",
    "first_divergence", "hidden_states_within_torch", "is_hidden_state", "live_reference", "model_conventions",
    "numpybert_tensors", "oracle_json", "oracle_lines", "oracle_rows", "output_tensors", "random_inputs",
    "reference_tensors", "render_conventions", "render_table", "report_json", "require_torch_bridge", "tensor_json",
    "with_fully_masked_row",
    "Golden", "read_golden", "write_golden",
    "REL_FLOOR", "TOLERANCES", "Stats", "Tolerance", "error_stats", "real_positions", "tolerance_scale",
]
