#!/usr/bin/env python
"""Export numpybert's reference data from PyTorch: tiny checkpoints and golden files.

PyTorch comes in through numpybert/audit/torch_bridge.py (the golden extra), which runs
transformers and records the intermediates; this script chooses the models, inputs and
files. Everything it writes is committed; numpybert's tests read it with NumPy alone.
Run it from the repository root with the project's venv.

Every file it writes is a *target* with an id; paths are relative to --out (tests/):
  checkpoints/<tiny>                      checkpoints/<tiny>/ (config.json + weights)
  <model>/<case>.<dtype>                  golden/<model>/<case>.<dtype>.safetensors
  all-MiniLM-L6-v2/tokens                 golden/all-MiniLM-L6-v2/tokens.json
  all-MiniLM-L6-v2/sentence_embeddings    golden/all-MiniLM-L6-v2/sentence_embeddings.safetensors

Usage:
  .venv/bin/python scripts/export_golden.py all            # everything below
  .venv/bin/python scripts/export_golden.py tiny           # tiny checkpoints + their goldens
  .venv/bin/python scripts/export_golden.py minilm | tokens | sentences
  .venv/bin/python scripts/export_golden.py export tiny-bert/pair.float64 [ID ...]
  .venv/bin/python scripts/export_golden.py verify [--case ID ...]   # re-export and compare

A file whose tensors and metadata (other than `created`) come out the same is left
untouched, so re-running leaves git clean.

Goldens come from transformers' BertModel with attn_implementation="eager", in eval
mode under torch.no_grad(), on CPU with 2 threads; re-running gives identical tensors.
A golden of a reduced-precision checkpoint (F16, BF16) is computed in float32/float64
from the stored, already rounded weights.
"""
import argparse
import datetime
import functools
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.numpy
import tokenizers

from numpybert.errors import MissingExtraError
from numpybert.audit.golden import FORMAT, FORMAT_VERSION
from numpybert.loading import family as families
from numpybert.loading.checkpoint import weights_sha256
from numpybert.loading.files import sha256_files

try:
    from numpybert.audit import torch_bridge as bridge
except MissingExtraError as e:
    print(f"export_golden.py: error: {e}", file=sys.stderr)
    sys.exit(2)
import safetensors.torch  # noqa: E402  (torch is there: the bridge imported it)
from numpybert.audit.torch_bridge import ATTN, DTYPES, torch, transformers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests"
DEFAULT_MINILM = REPO / "weights" / "all-MiniLM-L6-v2"
MINILM = "all-MiniLM-L6-v2"
COMMAND = ".venv/bin/python scripts/export_golden.py"
SEED = bridge.SEED
# `verify` allows max abs diff <= VERIFY_TOL * max(1, max |x| of the committed tensor), i.e.
# absolute for tensors up to 1, relative for larger ones (scores, logits). Integer tensors
# (the stored inputs) and metadata must match exactly. Measured:
#   * same machine, same thread count: re-export is bitwise identical (diff 0 everywhere).
#   * thread count: 1 thread instead of 2 moves B=1 fp32 results by up to 6e-6 abs (1.2e-6 of
#     scale) and fp64 by 2.2e-15, as the GEMM splits its work differently; it is pinned.
#   * another CPU: goldens exported on an AVX2 Xeon, re-exported on an AVX-512 Xeon
#     (2026-11-29), differ by up to 2.0e-6 of scale in fp32 (MiniLM attentions.4) and 2.4e-14 in
#     fp64 -- torch's own fp32 kernel noise, since CI may run on either kind of machine.
# So fp32 allows 1e-5 of scale (5x the cross-CPU noise) and fp64 1e-12: any real change of
# recipe (inputs, weights, conventions, export code) moves fp32 outputs by far more than 1e-5,
# and every MiniLM and tiny case with an fp64 twin is held to 1e-12 there.
VERIFY_TOL = {"float32": 1e-5, "float64": 1e-12}

# Base config of every tiny checkpoint. initializer_range is 0.2, not BERT's 0.02: at
# hidden size 32, 0.02 leaves attention almost uniform and GELU inputs near 0, where gelu
# and gelu_new agree to 1e-8; at 0.2 a wrong scale, mask or activation shows clearly.
TINY_CONFIG = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=64, type_vocab_size=2,
                   hidden_act="gelu", layer_norm_eps=1e-12, initializer_range=0.2)
# All share seed 0: tiny-f16/bf16/f64/sharded/no-pooler/gelu-new/relu hold tiny-bert's weights
# (rounded for f16/bf16; no pooler for no-pooler), and so do the bert.* keys of the two heads.
TINY_MODELS = {
    "tiny-bert": {},
    "tiny-pretraining": {"arch": "BertForPreTraining", "legacy_names": True},
    "tiny-f16": {"storage": torch.float16},
    "tiny-bf16": {"storage": torch.bfloat16},
    "tiny-f64": {"storage": torch.float64},
    "tiny-gelu-new": {"config": {"hidden_act": "gelu_new"}},
    "tiny-type-vocab-1": {"config": {"type_vocab_size": 1}},
    "tiny-relu": {"config": {"hidden_act": "relu"}},
    "tiny-no-pooler": {"pooler": False},
    "tiny-sharded": {"sharded": True},
    "tiny-classifier": {"arch": "BertForSequenceClassification", "config": {
        "num_labels": 3, "id2label": {0: "negative", 1: "neutral", 2: "positive"}}},
}
# The BERT family (issue 21): the same tiny sizes in each model's own config class, seed 0.
# RoBERTa/XLM-R: pad id 1 (<s> 0, </s> 2), positions from pad_token_id + 1, so
# max_position_embeddings 66 holds 64 tokens; one token type. ELECTRA: embedding_size 16 != 32
# (embeddings_project). DistilBERT: its own names, no token types; the classifier one has
# sinusoidal position embeddings (stored in the checkpoint like any weight).
ROBERTA = dict(TINY_CONFIG, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
               eos_token_id=2, layer_norm_eps=1e-5)
DISTILBERT = dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64,
                  activation="gelu", initializer_range=0.2)
ELECTRA = dict(TINY_CONFIG, embedding_size=16)
MPNET = {k: v for k, v in ROBERTA.items() if k != "type_vocab_size"}  # MPNetConfig: no token types; pad id 1
LABELS = {"num_labels": 3, "id2label": {0: "negative", 1: "neutral", 2: "positive"}}
FAMILY_MODELS = {
    "tiny-roberta": {"family": "roberta"},
    "tiny-roberta-mlm": {"family": "roberta", "arch": "RobertaForMaskedLM", "pooler": False},
    "tiny-roberta-classifier": {"family": "roberta", "arch": "RobertaForSequenceClassification", "pooler": False,
                                "config": LABELS},
    "tiny-xlm-roberta": {"family": "xlm-roberta", "pooler": False},
    "tiny-distilbert": {"family": "distilbert"},
    "tiny-distilbert-mlm": {"family": "distilbert", "arch": "DistilBertForMaskedLM"},
    "tiny-distilbert-classifier": {"family": "distilbert", "arch": "DistilBertForSequenceClassification",
                                   "config": {**LABELS, "sinusoidal_pos_embds": True}},
    "tiny-electra": {"family": "electra"},
    "tiny-electra-generator": {"family": "electra", "arch": "ElectraForMaskedLM"},
    "tiny-electra-classifier": {"family": "electra", "arch": "ElectraForSequenceClassification", "config": LABELS},
    "tiny-mpnet": {"family": "mpnet"},  # issue 25: relative position buckets (long_64 reaches bucket 13)
}
FAMILY_CONFIG = {"roberta": ("RobertaConfig", "RobertaModel", ROBERTA),
                 "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel", ROBERTA),
                 "distilbert": ("DistilBertConfig", "DistilBertModel", DISTILBERT),
                 "electra": ("ElectraConfig", "ElectraModel", ELECTRA),
                 "mpnet": ("MPNetConfig", "MPNetModel", MPNET)}
TINY_MODELS.update(FAMILY_MODELS)
CASES = ["one_sentence", "padded_batch", "pair", "masked_first", "fully_masked"]
LEFT_PADDED = ("roberta", "xlm-roberta", "mpnet")  # positions from the ids: left padding gives the same real-token positions


def model_cases(name):
    """The golden cases of one tiny model: every case for the base models (and left padding where
    positions come from the ids), the padded batch only for the family's task heads (their logits).
    (tests/golden + tests/checkpoints must stay under 20 MB: tests/test_golden.py; so the family's
    masking cases are float32 only, see `tiny_targets`.)"""
    spec = TINY_MODELS[name]
    family = spec.get("family")
    if family is None:
        return CASES
    if "arch" in spec:
        return ["padded_batch"]
    if family == "xlm-roberta":  # RoBERTa's math under another model_type: two cases keep the goldens small
        return ["one_sentence", "left_padded"]
    if family == "mpnet":  # no token types (no pair case); long_64 spans 64 positions, so 14 of the 32 buckets
        return ["one_sentence", "padded_batch", "masked_first", "fully_masked", "left_padded", "long_64"]
    return CASES + (["left_padded"] if family in LEFT_PADDED else [])
DESCRIPTIONS = {
    "one_sentence": "one unpadded sequence (B=1); the only case with trace.* sub-operation tensors "
                    "(except all-MiniLM-L6-v2 float64)",
    "padded_batch": "four right-padded rows of very different lengths (pad id 0, mask 0 on pads)",
    "pair": "two sequence pairs, token_type_ids 1 on the second segment (tiny-type-vocab-1: all 0)",
    "masked_first": "two rows; row 1 has attention_mask 0 at position 0 only",
    "fully_masked": "two rows; row 1 has an all-zero attention_mask (eager gives uniform probs)",
    "left_padded": "four left-padded rows (RoBERTa: positions from the ids, so real tokens keep theirs)",
    "long_64": "one sequence of 64 tokens (relative distances up to 63: MPNet's logarithmic buckets); "
               "no attentions",
    "long_512": "one English text truncated to exactly 512 tokens; for size no attentions and "
                "of the hidden states only hidden_states.0",
}
# Real English for all-MiniLM-L6-v2; long_512 joins the sentences of tests/data/sentences.json.
MINILM_TEXTS = {
    "one_sentence": ["Hello, how are you today?"],
    "padded_batch": [
        "Good morning!",
        "The train was late again.",
        "Electric cars are getting cheaper, and cities are building chargers.",
        "When the storm passed, the villagers walked down to the harbour to count the broken boats.",
    ],
    "pair": [("How old are you?", "I am six years old."),
             ("Where is the station?", "Two blocks north, by the old post office.")],
    "masked_first": ["A cat is sleeping on the warm windowsill.", "Prices fell sharply."],
    "fully_masked": ["Photosynthesis converts sunlight into energy.", "See you tomorrow!"],
}
MINILM_FLOAT64 = ["one_sentence", "padded_batch", "pair"]


# ----------------------------------------------------------------------------- helpers

def utc_now():
    """The `created` stamp: UTC, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_for(target, minilm_dir):
    """The exact command that regenerates one target at its committed location."""
    command = f"{COMMAND} export {target}"
    if target.startswith(MINILM + "/") and Path(minilm_dir).resolve() != DEFAULT_MINILM.resolve():
        command += f" --minilm {minilm_dir}"
    return command


def base_metadata(target, minilm_dir):
    """Metadata keys shared by every golden file."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "generator": "scripts/export_golden.py",
            "command": command_for(target, minilm_dir), **bridge.versions(), "numpy_version": np.__version__,
            "created": utc_now()}


# ------------------------------------------------------------------------ checkpoints

def seeded(model):
    """LayerNorms and biases made non-trivial (seeded), in eval mode; also scripts/make_family_st.py's."""
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith(("LayerNorm.weight", "layer_norm.weight")):
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    return model.eval()


def build_tiny_model(name):
    """transformers' own random init (seed 0), then LayerNorms and biases made non-trivial."""
    spec = TINY_MODELS[name]
    config_class, base, base_config = FAMILY_CONFIG.get(spec.get("family"), ("BertConfig", "BertModel", TINY_CONFIG))
    config = getattr(transformers, config_class)(**{**base_config, **spec.get("config", {})})
    torch.manual_seed(SEED)
    model = seeded(getattr(transformers, spec.get("arch", base))(config))
    if not spec.get("pooler", True) and "arch" not in spec:
        model.pooler = None  # as BertModel(add_pooling_layer=False), keeping tiny-bert's other weights
    return model.to(spec.get("storage", torch.float32))


def legacy_names(tensors, max_positions):
    """Old-checkpoint spelling: LayerNorm.gamma/beta and a stored position_ids buffer."""
    renamed = {}
    for key, value in tensors.items():
        if key.endswith("LayerNorm.weight"):
            key = key[: -len("weight")] + "gamma"
        elif key.endswith("LayerNorm.bias"):
            key = key[: -len("bias")] + "beta"
        renamed[key] = value
    renamed["bert.embeddings.position_ids"] = torch.arange(max_positions, dtype=torch.int64)[None]
    return renamed


def write_sharded(out_dir, tensors):
    """Two shards (embeddings + layer 0, then the rest) and model.safetensors.index.json."""
    first = [k for k in sorted(tensors) if k.startswith(("embeddings.", "encoder.layer.0."))]
    groups = [first, [k for k in sorted(tensors) if k not in first]]
    weight_map = {}
    for i, group in enumerate(groups, 1):
        filename = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        safetensors.torch.save_file({k: tensors[k] for k in group}, str(out_dir / filename),
                                    metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, filename))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def export_checkpoint(name, out_dir):
    """Write tests/checkpoints/<name>/: the keys transformers itself saves, then reshaped."""
    spec, model = TINY_MODELS[name], build_tiny_model(name)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)  # leaves out the tied cls.predictions.decoder.*
        tensors = safetensors.torch.load_file(str(Path(tmp) / "model.safetensors"))
        config_text = (Path(tmp) / "config.json").read_text()
    if spec.get("legacy_names"):
        tensors = legacy_names(tensors, model.config.max_position_embeddings)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    (out_dir / "config.json").write_text(config_text)
    if spec.get("sharded"):
        write_sharded(out_dir, tensors)
    else:
        safetensors.torch.save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})


def load_reference(model_dir, name, dtype):
    """The torch reference for one checkpoint (a tiny one as its spec says), upcast to `dtype`."""
    spec = TINY_MODELS.get(name, {})
    base = FAMILY_CONFIG[spec["family"]][1] if "family" in spec else "BertModel"
    return bridge.load_reference(str(model_dir), dtype, spec.get("arch", base), spec.get("pooler", True))


# ----------------------------------------------------------------------------- inputs

def tiny_inputs(case, config):
    """Seeded random ids in [1, vocab) with position 0 = 2 (a stand-in [CLS]), pad id 0.
    RoBERTa/XLM-R: ids in [3, vocab), <s> = 0 first, pad id 1 (left_padded: pads first).
    DistilBERT: no token_type_ids (its forward takes none)."""
    lengths, seq_len = {"one_sentence": ([9], 9), "padded_batch": ([12, 3, 7, 1], 12),
                        "pair": ([10, 8], 10), "masked_first": ([8, 8], 8),
                        "fully_masked": ([6, 6], 6), "left_padded": ([12, 3, 7, 1], 12), "long_64": ([64], 64)}[case]
    rng = np.random.default_rng(100 + (CASES + ["left_padded", "long_64"]).index(case))
    mask = (np.arange(seq_len)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    roberta = config.model_type in LEFT_PADDED
    if roberta:
        ids = np.where(mask == 1, rng.integers(3, config.vocab_size, size=mask.shape), config.pad_token_id)
        ids[:, 0] = 0
        if case == "left_padded":
            ids, mask = ids[:, ::-1].copy(), mask[:, ::-1].copy()
            ids[np.arange(len(ids)), seq_len - np.array(lengths)] = 0  # <s> on each row's first real token
    else:
        ids = rng.integers(1, config.vocab_size, size=mask.shape) * mask
        ids[:, 0] = 2
    types = np.zeros_like(ids)
    if case == "pair" and getattr(config, "type_vocab_size", 0) > 1:
        types[0, 5:10] = 1  # second segment; the pads of row 1 stay type 0, as tokenizers do
        types[1, 3:8] = 1
    if case == "masked_first":
        mask[1, 0] = 0
    if case == "fully_masked":
        mask[1, :] = 0
    inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
              "token_type_ids": torch.from_numpy(types)}
    if not families.get(config.model_type).token_types:  # DistilBERT's and MPNet's forward take none
        del inputs["token_type_ids"]
    return inputs


@functools.lru_cache(maxsize=2)
def load_tokenizer(minilm_dir):
    """transformers' fast tokenizer for the model directory."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    assert tokenizer.is_fast, "expected the fast (tokenizers) tokenizer"
    return tokenizer


def minilm_inputs(case, minilm_dir):
    """Tokenized real English, padding="longest"; masks edited for the masking cases."""
    tokenizer = load_tokenizer(str(minilm_dir))
    if case == "long_512":
        text = " ".join(json.loads((REPO / "tests/data/sentences.json").read_text())["sentences"])
        enc = tokenizer([text], truncation=True, max_length=512, return_tensors="pt")
        assert enc["input_ids"].shape == (1, 512), enc["input_ids"].shape
    elif case == "pair":
        first, second = zip(*MINILM_TEXTS["pair"])
        enc = tokenizer(list(first), list(second), padding="longest", return_tensors="pt")
    else:
        enc = tokenizer(MINILM_TEXTS[case], padding="longest", return_tensors="pt")
    inputs = {k: enc[k].to(torch.int64).clone() for k in ("input_ids", "attention_mask", "token_type_ids")}
    if case == "masked_first":
        inputs["attention_mask"][1, 0] = 0
    if case == "fully_masked":
        inputs["attention_mask"][1, :] = 0
    return inputs


# ---------------------------------------------------------------------------- goldens

def export_golden(target, path, ckpt_root, minilm_dir):
    """Write one golden/<model>/<case>.<dtype>.safetensors."""
    name, rest = target.split("/")
    case, dtype = rest.split(".")
    model_dir = minilm_dir if name == MINILM else Path(ckpt_root) / name
    model = load_reference(model_dir, name, dtype)
    bert = bridge.base_model(model)
    inputs = minilm_inputs(case, minilm_dir) if name == MINILM else tiny_inputs(case, bert.config)
    # Size: no trace in all-MiniLM-L6-v2's float64 one_sentence (2.6 MB); long_512 keeps only
    # hidden_states.0 of the hidden states (hidden_states.L is last_hidden_state).
    trace = case == "one_sentence" and not (name == MINILM and dtype == "float64")
    tensors = bridge.golden_tensors(model, inputs, dtype, trace=trace, attentions=not case.startswith("long_"))
    if case == "long_512":
        for i in range(1, bert.config.num_hidden_layers + 1):  # (MiniLM only)
            del tensors[f"outputs.hidden_states.{i}"]
    metadata = {**base_metadata(target, minilm_dir), "attn_implementation": ATTN, "dtype": dtype,
                "model": name, "model_sha256": weights_sha256(model_dir), "case": case,
                "description": DESCRIPTIONS[case]}
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.detach().clone().contiguous() for k, v in sorted(tensors.items())},
                                str(path), metadata=metadata)


def token_case(tokenizer, kind, text, pair=None, max_length=None):
    """One tokens.json case: the fast tokenizer's ids, no padding."""
    truncation = "longest_first" if max_length is not None else None
    # The batched call: transformers' single-string call drops an empty pair (`if text_pair:`), while its
    # batched call and the tokenizers library keep it ([CLS] A [SEP] [SEP]); numpybert follows the latter.
    batch = tokenizer([text], None if pair is None else [pair], truncation=truncation or False, max_length=max_length)
    enc = {key: values[0] for key, values in batch.items()}
    return {"kind": kind, "text": text, "pair": pair, "max_length": max_length, "truncation": truncation,
            "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
            "attention_mask": enc["attention_mask"],
            "tokens": tokenizer.convert_ids_to_tokens(enc["input_ids"])}


def export_tokens(path, minilm_dir):
    """Write tokens.json for tests/data/tricky_texts.json, one case per line."""
    tokenizer = load_tokenizer(str(minilm_dir))
    data = json.loads((REPO / "tests/data/tricky_texts.json").read_text())
    cases = [token_case(tokenizer, "single", text) for text in data["single"]]
    cases += [token_case(tokenizer, "pair", text, pair) for text, pair in data["pairs"]]
    cases += [token_case(tokenizer, "truncated", c["text"], c["pair"], c["max_length"]) for c in data["truncated"]]
    tokenizer_sha256 = sha256_files(Path(minilm_dir) / "tokenizer.json")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "generator": "scripts/export_golden.py",
              "command": command_for(f"{MINILM}/tokens", minilm_dir),
              "transformers_version": transformers.__version__, "tokenizers_version": tokenizers.__version__,
              "model": MINILM, "tokenizer_sha256": tokenizer_sha256, "created": utc_now()}
    lines = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"header": ' + json.dumps(header, indent=2, ensure_ascii=False)
                    + ',\n "cases": [\n' + lines + "\n ]}\n", encoding="utf-8")


def export_sentences(path, minilm_dir):
    """Write sentence_embeddings.safetensors: SentenceTransformer.encode of tests/data/sentences.json."""
    sentences_file = REPO / "tests/data/sentences.json"
    sentences = json.loads(sentences_file.read_text())["sentences"]
    embeddings, info = bridge.sentence_embeddings(minilm_dir, sentences)
    metadata = {**base_metadata(f"{MINILM}/sentence_embeddings", minilm_dir),
                "sentence_transformers_version": info["sentence_transformers_version"],
                "attn_implementation": info["attn_implementation"],
                "dtype": "float32", "model": MINILM, "model_sha256": weights_sha256(minilm_dir),
                "case": "sentence_embeddings", "max_seq_length": info["max_seq_length"],
                "sentences_sha256": sha256_files(sentences_file),
                "description": "SentenceTransformer(dir).encode(tests/data/sentences.json sentences)"}
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.numpy.save_file({"outputs.embeddings": embeddings},
                                str(path), metadata=metadata)


# ---------------------------------------------------------------------------- targets

def tiny_targets():
    """Ids of the tiny checkpoints and their goldens (checkpoints first)."""
    return ([f"checkpoints/{n}" for n in TINY_MODELS]
            + [f"{n}/{c}.{d}" for n in TINY_MODELS for c in model_cases(n) for d in DTYPES
               if d == "float32" or n not in FAMILY_MODELS or c not in ("masked_first", "fully_masked")
               and not (n == "tiny-mpnet" and c != "one_sentence")])  # MPNet: float64 once (20 MB budget)


def minilm_targets():
    """Ids of the all-MiniLM-L6-v2 forward goldens."""
    return ([f"{MINILM}/{c}.float32" for c in CASES + ["long_512"]]
            + [f"{MINILM}/{c}.float64" for c in MINILM_FLOAT64])


def all_targets():
    """Every target the script knows, in export order."""
    return tiny_targets() + minilm_targets() + [f"{MINILM}/tokens", f"{MINILM}/sentence_embeddings"]


def target_path(target, out):
    """Where a target lives under --out."""
    if target.startswith("checkpoints/"):
        return Path(out) / target
    if target == f"{MINILM}/tokens":
        return Path(out) / "golden" / MINILM / "tokens.json"
    return Path(out) / "golden" / f"{target}.safetensors"


def export_target(target, out, ckpt_root, minilm_dir):
    """Regenerate one target under `out`."""
    if target not in all_targets():
        raise SystemExit(f"unknown target {target!r}; known: checkpoints/<tiny>, <model>/<case>.<dtype>, "
                         f"{MINILM}/tokens, {MINILM}/sentence_embeddings")
    path = target_path(target, out)
    if target.startswith("checkpoints/"):
        export_checkpoint(target.split("/")[1], path)
    elif target == f"{MINILM}/tokens":
        export_tokens(path, minilm_dir)
    elif target == f"{MINILM}/sentence_embeddings":
        export_sentences(path, minilm_dir)
    else:
        export_golden(target, path, ckpt_root, minilm_dir)
    return path


def update_target(target, out, ckpt_root, minilm_dir):
    """Export one target, but keep the existing file when only its `created` stamp would change."""
    path = target_path(target, out)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = export_target(target, tmp, ckpt_root, minilm_dir)
        if path.exists() and compare_target(target, path, fresh) == ([], 0.0):
            return f"unchanged {path}"
        if path.is_dir():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(fresh), str(path))
    return f"wrote {path}"


# ----------------------------------------------------------------------------- verify

def compare_safetensors(committed, fresh):
    """Problems between two golden files (metadata except `created`; tensors within VERIFY_TOL)."""
    problems, worst = [], 0.0
    a, b = safetensors.safe_open(str(committed), "pt"), safetensors.safe_open(str(fresh), "pt")
    meta_a, meta_b = a.metadata() or {}, b.metadata() or {}
    for key in sorted((set(meta_a) | set(meta_b)) - {"created"}):
        if meta_a.get(key) != meta_b.get(key):
            problems.append(f"metadata {key}: committed {meta_a.get(key)!r}, re-export {meta_b.get(key)!r}")
    for name in sorted(set(a.keys()) | set(b.keys())):
        if name not in a.keys() or name not in b.keys():
            problems.append(f"tensor {name}: only in {'re-export' if name in b.keys() else 'committed file'}")
            continue
        x, y = a.get_tensor(name), b.get_tensor(name)
        if x.shape != y.shape or x.dtype != y.dtype:
            problems.append(f"tensor {name}: {x.dtype}{list(x.shape)} vs re-export {y.dtype}{list(y.shape)}")
            continue
        diff = (x.double() - y.double()).abs().max().item() if x.numel() else 0.0
        worst = max(worst, diff)
        limit = 0.0
        if x.is_floating_point() and x.numel():
            limit = VERIFY_TOL[str(x.dtype).removeprefix("torch.")] * max(1.0, x.abs().max().item())
        if not diff <= limit:  # `not <=` also catches NaN
            problems.append(f"tensor {name}: max abs diff {diff:.3g} > {limit:g}")
    return problems, worst


def compare_target(target, committed, fresh):
    """Problems and the largest tensor difference between a committed and a re-exported target."""
    if not committed.exists():
        return [f"committed file {committed} does not exist"], 0.0
    if committed.suffix == ".safetensors":
        return compare_safetensors(committed, fresh)
    if committed.suffix == ".json":
        a, b = json.loads(committed.read_text()), json.loads(fresh.read_text())
        a["header"].pop("created"), b["header"].pop("created")
        return ([] if a == b else ["tokens.json differs (header or cases)"]), 0.0
    files = sorted(p.name for p in committed.iterdir()), sorted(p.name for p in fresh.iterdir())
    if files[0] != files[1]:
        return [f"checkpoint files {files[0]} vs re-export {files[1]}"], 0.0
    return [f"{f} differs byte-wise" for f in files[0] if (committed / f).read_bytes() != (fresh / f).read_bytes()], 0.0


def verify(targets, minilm_dir):
    """Re-export targets into a temporary directory and compare; exit 1 on any mismatch."""
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            export_target(target, tmp, DEFAULT_OUT / "checkpoints", minilm_dir)
            committed = target_path(target, DEFAULT_OUT)
            problems, worst = compare_target(target, committed, target_path(target, tmp))
            print(f"{'OK  ' if not problems else 'FAIL'} {target} (max abs diff {worst:.3g})")
            for problem in problems:
                print(f"  {committed.relative_to(REPO)}: {problem}")
            if problems:
                print(f"  regenerate with: {command_for(target, minilm_dir)}")
            failures += bool(problems)
    print(f"{len(targets) - failures} passed, {failures} failed")
    return 1 if failures else 0


# -------------------------------------------------------------------------------- CLI

def parse_args(argv):
    """argparse CLI with one subcommand per group of targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    helps = {"all": "regenerate every target", "tiny": "tiny checkpoints and their goldens",
             "minilm": "all-MiniLM-L6-v2 forward goldens", "tokens": "tokens.json",
             "sentences": "sentence_embeddings.safetensors", "export": "the named targets",
             "verify": "re-export into a temporary directory and compare with the committed files"}
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--minilm", type=Path, default=DEFAULT_MINILM, help="all-MiniLM-L6-v2 directory")
        if name == "export":
            p.add_argument("targets", nargs="+", help="target ids, e.g. tiny-bert/pair.float32")
        if name == "verify":
            p.add_argument("--case", action="append", help="target id to verify (repeatable; default all)")
        else:
            p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="tests directory to write into")
    return parser.parse_args(argv)


def main(argv=None):
    """Run one subcommand."""
    args = parse_args(argv)
    bridge.setup()
    if args.command == "verify":
        return verify(args.case or all_targets(), args.minilm)
    groups = {"all": all_targets(), "tiny": tiny_targets(), "minilm": minilm_targets(),
              "tokens": [f"{MINILM}/tokens"], "sentences": [f"{MINILM}/sentence_embeddings"]}
    targets = args.targets if args.command == "export" else groups[args.command]
    ckpt_root = args.out / "checkpoints" if args.command in ("all", "tiny") else DEFAULT_OUT / "checkpoints"
    for target in targets:
        print(update_target(target, args.out, ckpt_root, args.minilm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
