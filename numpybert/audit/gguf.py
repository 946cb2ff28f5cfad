"""Audit a llama.cpp GGUF deployment against the checkpoint it was converted from.

    report = audit_gguf("all-minilm.q8_0.gguf", "weights/all-MiniLM-L6-v2", texts)
    print(render(report)); report_json(report)

Both sides run through numpybert, so every difference is the file's: the GGUF's (dequantized) weights in
float32 against the original safetensors checkpoint in float32 (the thing the file should equal), each
against the float64 oracle (numpybert/reference.py on the original). Compared, in forward order, every
recorded intermediate at real tokens with numpybert's float32 tolerances (as `audit --onnx`): the first
tensor outside them is named (exit 1), or all pass (exit 0). Then the task: per-text cosine of the
sentence embeddings (the GGUF's pooling_type, normalized, on both sides), and the tokenizer: the GGUF's
vocabulary and flags (numpybert/text/gguf_vocab.py) against the original tokenizer on the tricky texts of
`audit --tokenizer`, the first text and token where they differ.
"""

import dataclasses

import numpy as np

from ..util import cosine
from .compare import compare, first_divergence, numpybert_tensors, oracle_rows, tensor_json
from .stats import STATS_HEAD, TOLERANCES, number, sci, stats_cells, stats_json
from .tokenizer_audit import TRICKY_TEXTS, TextResult, encode_model, tokens

DEFAULT_TEXTS = ("Hello, how are you today?", "The quick brown fox jumps over the lazy dog by the river bank.",
                 "Café naïve résumé — ÅNGSTRÖM 北京 🍕")


@dataclasses.dataclass
class GgufReport:
    gguf: str
    model: str
    types: dict  # stored tensor type -> count
    pooling: str
    inputs: dict  # input_ids, attention_mask of the audited forward
    tensors: list  # TensorReport: GGUF fp32 vs original fp32, forward order
    oracle: list  # OracleRow: .numpybert = the GGUF's distance from fp64, .torch = the original fp32's
    cosines: list  # per text: cos(GGUF embedding, original embedding)
    texts: list
    tokenizer: list  # TextResult per tricky text: .model_ids = original's, .other_ids = the GGUF's
    tokenizer_notes: list
    omitted: list = dataclasses.field(default_factory=list)  # the original's tensors the GGUF cannot have

    @property
    def first_divergence(self):
        return first_divergence(self.tensors)

    @property
    def first_token_difference(self):
        return next((r for r in self.tokenizer if not r.same), None)

    @property
    def passed(self) -> bool:
        return self.first_divergence is None and self.first_token_difference is None


def audit_gguf(gguf_path, model_dir, texts=None) -> GgufReport:
    """The GGUF at `gguf_path` against the checkpoint directory `model_dir`, on `texts` (tokenized by the
    original's tokenizer, so both forwards see the same ids; the tokenizers are compared apart)."""
    from .. import load
    deployed, original = load(gguf_path), load(model_dir)
    oracle = load(model_dir, dtype="float64", engine="reference")
    texts = list(texts or DEFAULT_TEXTS)
    inputs = original.tokenize(texts, truncation=True)
    ours, ref = numpybert_tensors(deployed, inputs), numpybert_tensors(original, inputs)
    mask = inputs["attention_mask"]
    omitted = [name for name in ref if name not in ours]  # the pooler: the converter dropped it
    ref = {name: value for name, value in ref.items() if name in ours}
    rows = compare(ours, ref, mask, "float32", scaled=True)
    budget = oracle_rows(ours, ref, numpybert_tensors(oracle, inputs), mask)
    pooling = deployed.sentence.settings.pooling
    a = deployed.encode(texts)
    b = original.encode(texts, pooling=pooling, normalize=True)
    counts = {}
    for kind in deployed.gguf["types"].values():
        counts[kind] = counts.get(kind, 0) + 1
    return GgufReport(str(gguf_path), str(model_dir), counts, "+".join(pooling), inputs, rows, budget,
                      [cosine(x, y) for x, y in zip(a, b)], texts, tokenizer_results(deployed, original),
                      list(deployed.tokenizer_notes), omitted)


def tokenizer_results(deployed, original) -> list:
    """Every tricky text through both tokenizers, truncated at the original's max length."""
    limit = min(original.max_seq_length, deployed.config.max_length)
    results = []
    for label, text, pair in TRICKY_TEXTS:
        a, b = encode_model(original, text, pair, limit), encode_model(deployed, text, pair, limit)
        results.append(TextResult(label, text, pair, a, b, tokens(original.tokenizer.backend, a),
                                  tokens(deployed.tokenizer.backend, b)))
    return results


# ----------------------------------------------------------------------------- presenting it

def report_json(report: GgufReport) -> dict:
    first, token = report.first_divergence, report.first_token_difference
    return {"gguf": report.gguf, "model": report.model, "tensor_types": report.types, "pooling": report.pooling,
            "passed": report.passed, "tolerance": dataclasses.asdict(TOLERANCES["float32"]),
            "first_divergence": None if first is None else first.name, "not_compared": report.omitted,
            "tensors": [tensor_json(r) for r in report.tensors],
            "oracle": [{"name": r.name, "gguf": stats_json(r.numpybert), "original_float32": stats_json(r.torch)}
                       for r in report.oracle],
            "embeddings": {"texts": report.texts, "cosine": [number(c) for c in report.cosines],
                           "min_cosine": number(min(report.cosines))},
            "tokenizer": {"passed": token is None, "texts": len(report.tokenizer), "notes": report.tokenizer_notes,
                          "differing": [r.label for r in report.tokenizer if not r.same],
                          "first_difference": None if token is None else {
                              "label": token.label, "text": token.text, "position": token.first_difference,
                              "original": {"ids": token.model_ids, "tokens": token.model_tokens},
                              "gguf": {"ids": token.other_ids, "tokens": token.other_tokens}}}}


def render(report: GgufReport) -> str:
    mask = report.inputs["attention_mask"]
    tol = TOLERANCES["float32"]
    types = ", ".join(f"{k} {v}" for k, v in sorted(report.types.items()))
    lines = [f"numpybert audit --gguf: {report.gguf} vs {report.model}, both through numpybert (float32)",
             f"GGUF tensor types: {types}; pooling {report.pooling}",
             f"inputs: {mask.shape[0]} text(s) × {mask.shape[1]} tokens, {int(mask.sum())} real",
             f"pass: max abs ≤ {tol.real:g} × max(1, max|original|) at real tokens", ""]
    width = max(len(r.name) for r in report.tensors)
    first = report.first_divergence
    lines.append(f"{'tensor':<{width}}  {STATS_HEAD}  {'tol':>8}  result")
    for row in report.tensors:
        verdict = "ok" if row.passed else "FAIL" + (" <- first divergence" if row is first else "")
        lines.append(f"{row.name:<{width}}  {stats_cells(row.real)}  {sci(row.tolerance.real):>8}  {verdict}"
                     + (f" ({row.problem})" if row.problem else ""))
    failed = sum(not r.passed for r in report.tensors)
    lines += ["", f"PASS: all {len(report.tensors)} tensors within float32 tolerance" if first is None else
              f"FAIL: {failed} of {len(report.tensors)} tensors; first diverging tensor: {first.name}: max abs "
              f"{sci(first.real.max_abs)} at real tokens (tolerance {sci(first.tolerance.real)})"]
    if report.omitted:
        lines.append(f"not compared: {', '.join(report.omitted)} (the original's; llama.cpp's converter drops "
                     "the pooler)")
    hidden = [r for r in report.oracle if r.hidden_state]
    if hidden:
        lines += ["", "against the float64 oracle (real tokens, max abs): GGUF / original float32"]
        lines += [f"  {r.name:<{width}}  {sci(r.numpybert.max_abs):>8} / {sci(r.torch.max_abs):>8}" for r in hidden]
    lines += ["", "sentence embeddings (cosine, GGUF vs original): "
              + ", ".join(f"{c:.7f}" for c in report.cosines) + f"; min {min(report.cosines):.7f}"]
    lines += ["", *tokenizer_lines(report)]
    return "\n".join(lines)


def tokenizer_lines(report: GgufReport) -> list:
    token = report.first_token_difference
    n = len(report.tokenizer)
    lines = [f"tokenizer: the GGUF's vocabulary and flags vs the original tokenizer on {n} tricky texts: "
             + ("PASS, the same ids on every text" if token is None else
                f"FAIL, {sum(not r.same for r in report.tokenizer)} differ")]
    lines += [f"  ({note})" for note in report.tokenizer_notes]
    if token is not None:
        at = token.first_difference
        lines += [f"  first: {token.label}: {token.text[:60]!r}, token {at}: original "
                  f"{token.model_tokens[at:at + 3]} {token.model_ids[at:at + 3]}, GGUF "
                  f"{token.other_tokens[at:at + 3]} {token.other_ids[at:at + 3]}"]
    return lines
