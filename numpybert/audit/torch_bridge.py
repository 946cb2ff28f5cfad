"""The one door to PyTorch: run transformers' BertModel and record its intermediates.

This is the only module of numpybert that imports torch, transformers or
sentence-transformers, and nothing imports it until asked: `numpybert audit --live`,
`numpybert bench` (its torch worker) and scripts/export_golden.py. It needs the golden extra:

    pip install -e '.[golden]'      # in a checkout: torch 2.13.0 (CPU), transformers 5.23, sentence-transformers 6.2

Without it, importing this module raises `MissingExtraError` with that line.

The reference is transformers' BertModel (or BertFor*) with attn_implementation="eager",
in eval mode under torch.no_grad(), on CPU. `golden_tensors` runs it and returns the
golden-file layout: `inputs.*`, `outputs.*` and, when traced, every sub-operation as
`trace.*` under the names numpybert's own trace uses (see `TraceRecorder`).

Command line (the bench's torch worker runs this way, from any directory):
    python -m numpybert.audit.torch_bridge worker MODEL B T THREADS WARMUP   # driven over stdin
    python -m numpybert.audit.torch_bridge cold MODEL                        # torch's cold start
    python -m numpybert.audit.torch_bridge st-corpus MODEL N THREADS         # sentence-transformers' corpus run
    python -m numpybert.audit.torch_bridge train-step MODEL B T THREADS STEPS  # one training step's cost
"""

import contextlib
import functools
import math
import os
import sys

import numpy as np

from ..errors import GoldenError, MissingExtraError, install_hint
from ..loading import family as families

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from local directories only
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

INSTALL = install_hint("golden")
try:
    import torch
    import transformers
    from transformers.activations import ACT2FN
except ImportError as e:
    raise MissingExtraError(f"this needs torch and transformers ({e.name or e} is not installed): {INSTALL}") from None

SEED = 0
ATTN = "eager"
DTYPES = {"float32": torch.float32, "float64": torch.float64}
CHECK_TOL = {"float32": 1e-5, "float64": 1e-12}  # relative, for the trace cross-checks in check_trace
# transformers' classes of each family member come from the family registry (numpybert/loading/family.py)
HEADS = ("BertForPreTraining", *(h for f in families.FAMILIES.values() for h in f.heads()))  # logits recorded
POOLED = tuple(f.base_class for f in families.FAMILIES.values() if f.pooler)  # base classes with an optional pooler


def setup(threads: int = 2) -> None:
    """Fixed threads and seed, deterministic kernels, quiet transformers."""
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def versions() -> dict:
    return {"torch_version": torch.__version__, "transformers_version": transformers.__version__}


# ----------------------------------------------------------------------------- loading

def _config(model_dir: str) -> dict:
    from ..loading.config import read_json_object
    return read_json_object(os.path.join(model_dir, "config.json"), "config.json")


def _checkpoint_keys(model_dir: str) -> list:
    from ..loading.checkpoint import canonical_name, read_checkpoint
    from ..loading.config import BertConfig
    config = BertConfig.from_dict(_config(model_dir))
    return [canonical_name(k, config) for k in read_checkpoint(model_dir, mmap=True)[1]]


def architecture(model_dir: str) -> tuple:
    """(transformers class name, has a pooler) of a checkpoint: the head named in config.json's
    `architectures` when its logits are recorded, else the family's base model; the pooler when stored."""
    config = _config(model_dir)
    base = families.get(config.get("model_type", families.DEFAULT)).base_class
    named = (config.get("architectures") or [base])[0]
    keys = _checkpoint_keys(model_dir)
    head = "cls." if named.endswith(("ForPreTraining", "ForMaskedLM")) else "classifier."
    stored = any(k.startswith(head) for k in keys)  # all-mpnet-base-v2 names MPNetForMaskedLM but has no lm_head
    return (named if named in HEADS and stored else base), any(k.startswith("pooler.") for k in keys)


@functools.lru_cache(maxsize=4)
def load_reference(model_dir: str, dtype: str, arch: str | None = None, pooler: bool | None = None):
    """The torch reference for one checkpoint, upcast to `dtype`; refuses missing/extra keys.
    `arch`/`pooler` default to what the checkpoint holds (`architecture`)."""
    found = architecture(model_dir) if arch is None or pooler is None else (arch, pooler)
    arch, pooler = arch or found[0], found[1] if pooler is None else pooler
    kwargs = {} if pooler or arch not in POOLED else {"add_pooling_layer": False}
    model, info = getattr(transformers, arch).from_pretrained(
        model_dir, dtype=DTYPES[dtype], attn_implementation=ATTN, output_loading_info=True, **kwargs)
    problems = {k: sorted(v) for k, v in info.items() if v}
    if problems:
        raise GoldenError(f"{model_dir}: transformers did not load it cleanly: {problems}")
    return model.eval()


def base_model(model):
    """The encoder inside a *For* model (BertModel, RobertaModel, ...; or the model itself)."""
    return model.base_model


def _layer_modules(layer):
    """One layer's modules under numpybert's names: BERT's (RoBERTa, ELECTRA), DistilBERT's or MPNet's."""
    if hasattr(layer.attention, "attn"):  # MPNet's MPNetLayer
        return {"context": layer.attention.attn.o, "attention.output": layer.attention,
                "pre_act": layer.intermediate.dense, "act_in": layer.output.dense, "output": layer.output}
    if hasattr(layer, "ffn"):  # DistilBERT's TransformerBlock
        return {"context": layer.attention.out_lin, "attention.output": layer.sa_layer_norm,
                "pre_act": layer.ffn.lin1, "act_in": layer.ffn.lin2, "output": layer.output_layer_norm}
    return {"context": layer.attention.output, "attention.output": layer.attention.output,
            "pre_act": layer.intermediate.dense, "act_in": layer.output.dense, "output": layer.output}


def _layers(bert):
    return bert.transformer.layer if hasattr(bert, "transformer") else bert.encoder.layer


def _modeling(bert):
    """The family member's modeling module (eager_attention_forward is looked up there at call time)."""
    import importlib
    family = families.get(getattr(bert.config, "model_type", families.DEFAULT))
    return importlib.import_module(f"transformers.models.{family.modeling}")


# ----------------------------------------------------------------------------- the trace

class TraceRecorder:
    """Records a BertModel forward's sub-operations as trace.* tensors.

    nn.Module forward hooks give the embedding sum and output, the attention context
    (input of attention.output), attention.output, intermediate pre/post activation and
    the layer outputs. Attention internals come from wrapping modeling_bert's
    eager_attention_forward (BertSelfAttention looks it up at call time): its query, key,
    value and additive mask are recorded, scores and masked scores recomputed exactly
    as it computes them, and its softmax output recorded.
    """

    def __init__(self, bert):
        self.bert, self.trace, self.handles, self.original = bert, {}, [], None

    def __enter__(self):
        self._hook(self.bert.embeddings.LayerNorm, "trace.embeddings.sum", pre=True)
        self._hook(self.bert.embeddings, "trace.embeddings.output")
        if getattr(self.bert, "embeddings_project", None) is not None:  # ELECTRA
            self._hook(self.bert.embeddings_project, "trace.embeddings_project.output")
        self.index = {}
        for i, layer in enumerate(_layers(self.bert)):
            prefix, m = f"trace.encoder.layer.{i}", _layer_modules(layer)
            if hasattr(layer.attention, "attn"):  # MPNet computes attention inline: hooks on its modules
                self._mpnet_attention(layer.attention.attn, f"{prefix}.attention.self")
            self.index[id(layer.attention if hasattr(layer, "ffn") else getattr(layer.attention, "self", layer.attention))] = i
            self._hook(m["context"], f"{prefix}.attention.self.context", pre=True)
            self._hook(m["attention.output"], f"{prefix}.attention.output")
            self._hook(m["pre_act"], f"{prefix}.intermediate.pre_act")
            self._hook(m["act_in"], f"{prefix}.intermediate.output", pre=True)
            self._hook(m["output"], f"{prefix}.output")
        if getattr(self.bert, "pooler", None) is not None:
            self._hook(self.bert.pooler.dense, "trace.pooler.pre_tanh")
            self._hook(self.bert.pooler, "trace.pooled_output")
        self.modeling = _modeling(self.bert)
        self.original = getattr(self.modeling, "eager_attention_forward", None)
        if self.original is not None:
            self.modeling.eager_attention_forward = self._attention
        return self

    def __exit__(self, *exc):
        if self.original is not None:
            self.modeling.eager_attention_forward = self.original
        for handle in self.handles:
            handle.remove()

    def _mpnet_attention(self, attn, prefix):
        """MPNetSelfAttention: q, k, v from its Linear layers; scores, masked scores (position bias
        and mask added, in its order) recomputed as it computes them; probs from its output."""
        heads = lambda x: x.view(*x.shape[:-1], -1, attn.attention_head_size).transpose(1, 2)  # noqa: E731
        for part, name in (("q", "query"), ("k", "key"), ("v", "value")):
            self.handles.append(getattr(attn, part).register_forward_hook(
                lambda mod, args, out, name=name: self._store(f"{prefix}.{name}", heads(out))))

        def after(mod, args, out):
            mask, position_bias = (list(args[1:3]) + [None, None])[:2]
            q, k = self.trace[f"{prefix}.query"], self.trace[f"{prefix}.key"]
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(attn.attention_head_size)
            self._store(f"{prefix}.scores", scores)
            masked = scores + position_bias if position_bias is not None else scores
            self._store(f"{prefix}.masked_scores", masked + mask if mask is not None else masked)
            if len(out) > 1:
                self._store(f"{prefix}.probs", out[1])

        self.handles.append(attn.register_forward_hook(after))

    def _hook(self, module, name, pre=False):
        if pre:
            handle = module.register_forward_pre_hook(lambda mod, args: self._store(name, args[0]))
        else:
            handle = module.register_forward_hook(lambda mod, args, out: self._store(name, out))
        self.handles.append(handle)

    def _store(self, name, tensor):
        tensor = tensor[0] if isinstance(tensor, tuple) else tensor  # MPNetAttention returns (output, ...)
        assert name not in self.trace, f"{name} recorded twice"
        self.trace[name] = tensor.detach().clone()

    def _attention(self, module, query, key, value, attention_mask, scaling=None, **kwargs):
        output, probs = self.original(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
        scale = query.size(-1) ** -0.5 if scaling is None else scaling
        scores = torch.matmul(query, key.transpose(2, 3)) * scale  # as eager_attention_forward
        masked = scores + attention_mask if attention_mask is not None else scores
        prefix = f"trace.encoder.layer.{self.index[id(module)]}.attention.self"
        for name, tensor in [("query", query), ("key", key), ("value", value), ("scores", scores),
                             ("masked_scores", masked), ("probs", probs)]:
            self._store(f"{prefix}.{name}", tensor)
        return output, probs


def require_close(t, name, expected, dtype, exact=False):
    """Assert t[name] equals `expected` (bitwise if exact, else within CHECK_TOL relative)."""
    got = t[name]
    assert got.shape == expected.shape, f"trace check {name}: shape {got.shape} != {expected.shape}"
    diff = (got - expected).abs().max().item() if got.numel() else 0.0
    limit = 0.0 if exact else CHECK_TOL[dtype] * (1.0 + expected.abs().max().item())
    assert diff <= limit, f"trace check {name}: max abs diff {diff:.3g} > {limit:.3g}"


def check_trace(t, bert, dtype):
    """Cross-check the recorded trace against the model outputs and the model's own modules."""
    config = bert.config
    num_layers = config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.n_layers
    act = ACT2FN[getattr(config, "hidden_act", None) or config.activation]
    first = "trace.embeddings_project.output" if "trace.embeddings_project.output" in t else "trace.embeddings.output"
    require_close(t, first, t["outputs.hidden_states.0"], dtype, exact=True)
    require_close(t, "trace.embeddings.output", bert.embeddings.LayerNorm(t["trace.embeddings.sum"]), dtype)
    for i, layer in enumerate(_layers(bert)):
        p = f"trace.encoder.layer.{i}"
        q, k, v, probs = (t[f"{p}.attention.self.{n}"] for n in ("query", "key", "value", "probs"))
        require_close(t, f"{p}.attention.self.scores", q @ k.transpose(2, 3) / math.sqrt(q.shape[-1]), dtype)
        require_close(t, f"{p}.attention.self.probs", t[f"outputs.attentions.{i}"], dtype, exact=True)
        require_close(t, f"{p}.attention.self.probs", t[f"{p}.attention.self.masked_scores"].softmax(-1), dtype)
        context = (probs @ v).transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
        require_close(t, f"{p}.attention.self.context", context, dtype)
        if hasattr(layer.attention, "attn"):  # MPNet
            attn_out = layer.attention.LayerNorm(layer.attention.attn.o(t[f"{p}.attention.self.context"])
                                                 + t[f"outputs.hidden_states.{i}"])
            layer_out = layer.output(t[f"{p}.intermediate.output"], t[f"{p}.attention.output"])
        elif hasattr(layer, "ffn"):  # DistilBERT
            attn_out = layer.sa_layer_norm(layer.attention.out_lin(t[f"{p}.attention.self.context"])
                                           + t[f"outputs.hidden_states.{i}"])
            layer_out = layer.output_layer_norm(layer.ffn.lin2(t[f"{p}.intermediate.output"]) + t[f"{p}.attention.output"])
        else:
            attn_out = layer.attention.output(t[f"{p}.attention.self.context"], t[f"outputs.hidden_states.{i}"])
            layer_out = layer.output(t[f"{p}.intermediate.output"], t[f"{p}.attention.output"])
        require_close(t, f"{p}.attention.output", attn_out, dtype)
        require_close(t, f"{p}.intermediate.output", act(t[f"{p}.intermediate.pre_act"]), dtype)
        require_close(t, f"{p}.output", layer_out, dtype)
        require_close(t, f"{p}.output", t[f"outputs.hidden_states.{i + 1}"], dtype, exact=True)
    require_close(t, f"trace.encoder.layer.{num_layers - 1}.output", t["outputs.last_hidden_state"], dtype, exact=True)
    if "trace.pooled_output" in t:
        require_close(t, "trace.pooled_output", torch.tanh(t["trace.pooler.pre_tanh"]), dtype)
        require_close(t, "trace.pooled_output", t["outputs.pooler_output"], dtype, exact=True)


# ----------------------------------------------------------------------------- one forward

@torch.no_grad()
def golden_tensors(model, inputs: dict, dtype: str, trace: bool, attentions: bool = True) -> dict:
    """inputs.*, outputs.* (and trace.* when asked) for one forward of the reference model,
    as torch tensors; `inputs` are int64 torch tensors."""
    bert = base_model(model)
    recorder = TraceRecorder(bert) if trace else contextlib.nullcontext()
    with recorder:
        out = bert(**inputs, output_hidden_states=True, output_attentions=attentions)
    t = {f"inputs.{k}": v for k, v in inputs.items()}
    t["outputs.last_hidden_state"] = out.last_hidden_state
    if getattr(out, "pooler_output", None) is not None:
        t["outputs.pooler_output"] = out.pooler_output
    t.update({f"outputs.hidden_states.{i}": h for i, h in enumerate(out.hidden_states)})
    t.update({f"outputs.attentions.{i}": a for i, a in enumerate(out.attentions or ())})
    t.update(head_outputs(model, inputs, out.last_hidden_state))
    if trace:
        t.update(recorder.trace)
        t["trace.cls_vector"] = out.last_hidden_state[:, 0]
        check_trace(t, bert, dtype)
    return t


def head_outputs(model, inputs, last_hidden_state):
    """Task-head logits of BertForPreTraining, the family's *ForMaskedLM (as prediction_logits)
    and *ForSequenceClassification (logits); none for a base model."""
    if model is model.base_model:
        return {}
    out = model(**inputs, output_hidden_states=True)
    assert torch.equal(out.hidden_states[-1], last_hidden_state), "head run diverged from base run"
    if isinstance(model, transformers.BertForPreTraining):
        return {"outputs.prediction_logits": out.prediction_logits,
                "outputs.seq_relationship_logits": out.seq_relationship_logits}
    if type(model).__name__.endswith("ForMaskedLM"):
        return {"outputs.prediction_logits": out.logits}
    return {"outputs.logits": out.logits}


def live_reference(model_dir, inputs: dict, dtype: str):
    """transformers run now on NumPy `inputs`, traced, in a golden file's layout (a `Golden`
    of NumPy arrays whose metadata says kind "live")."""
    from .golden import Golden
    setup()
    model_dir = os.fspath(model_dir)
    model = load_reference(model_dir, dtype)
    if not families.get(model.config.model_type).token_types:  # DistilBertModel, MPNetModel take no token types
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}
    torch_inputs = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64)) for k, v in inputs.items()}
    groups = {"inputs": {}, "outputs": {}, "trace": {}}
    for key, tensor in golden_tensors(model, torch_inputs, dtype, trace=True).items():
        group, _, name = key.partition(".")
        groups[group][name] = tensor.detach().numpy()
    metadata = {"kind": "live", "model": model_dir, "dtype": dtype, **versions(), "attn_implementation": ATTN}
    return Golden("live", metadata, **groups)


def sentence_embeddings(model_dir, sentences: list) -> tuple:
    """SentenceTransformer(model_dir).encode(sentences) as float32, and what made it."""
    try:
        import sentence_transformers
    except ImportError:
        raise MissingExtraError(f"this needs sentence-transformers: {INSTALL}") from None
    model = sentence_transformers.SentenceTransformer(os.fspath(model_dir), device="cpu")
    embeddings = np.ascontiguousarray(model.encode(sentences, convert_to_numpy=True), np.float32)
    info = {"sentence_transformers_version": sentence_transformers.__version__,
            "attn_implementation": model[0].auto_model.config._attn_implementation,
            "max_seq_length": str(model.max_seq_length)}
    return embeddings, info


# ----------------------------------------------------------------------------- the bench's torch side

TRAINING = {"classification": "BertForSequenceClassification", "pretraining": "BertForPreTraining"}


def training_reference(model_dir, objective: str, dtype: str, batch: dict, steps: int = 0, lr: float = 1e-3,
                       weight_decay: float = 1e-2) -> dict:
    """torch autograd's side of numpybert.value_and_grad / AdamW: transformers' BertForSequenceClassification
    (RobertaForSequenceClassification, ... for the family) or BertForPreTraining in eval mode (dropout off) with gradients on. Returns {"loss": float,
    "grads": {parameter name: NumPy array}} of the batch (NumPy arrays: ids and labels), and with
    steps > 0 also "losses": the loss before each of `steps` torch.optim.AdamW steps and "after"
    (the loss after the last one)."""
    setup()
    family = families.get(_config(os.fspath(model_dir)).get("model_type", families.DEFAULT))
    arch = TRAINING[objective] if family.model_type == families.DEFAULT else family.heads()[1]  # RoBERTa's class
    model = load_reference(os.fspath(model_dir), dtype, arch, family.pooler and family.classifier == "pooled")
    model = copy_model(model)  # load_reference caches: never train the cached one
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}

    def loss_of():
        model.zero_grad(set_to_none=True)
        loss = model(**inputs).loss
        loss.backward()
        return loss

    loss = loss_of()
    out = {"loss": loss.item(), "grads": {n: p.grad.numpy().copy() for n, p in model.named_parameters()
                                          if p.grad is not None}}
    if steps:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        out["losses"] = []
        for _ in range(steps):
            out["losses"].append(loss.item())
            optimizer.step()
            loss = loss_of()
        out["after"] = loss.item()
    return out


def copy_model(model):
    import copy
    return copy.deepcopy(model)


def training_step_worker(model_dir: str, B: int, T: int, threads: int, steps: int) -> None:
    """The bench's torch side of one classification training step (forward, loss, backward, AdamW):
    prints the median seconds and the peak RSS growth in bytes over the steps (peak RSS minus the RSS
    before them), as `time growth` on one line (scripts/bench_train.py)."""
    import resource
    import time
    setup(threads)
    model = load_reference(model_dir, "float32", "BertForSequenceClassification", True)
    rng = np.random.default_rng(SEED)
    inputs = {"input_ids": torch.from_numpy(rng.integers(1, model.config.vocab_size, (B, T))),
              "attention_mask": torch.ones(B, T, dtype=torch.int64), "labels": torch.from_numpy(rng.integers(0, 2, B))}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    with open("/proc/self/statm") as f:
        base, times = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"), []  # RSS now, bytes
    for _ in range(steps):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes (Linux reports KiB)
    print(sorted(times)[len(times) // 2], peak - base, flush=True)


def bench_worker(model_dir: str, B: int, T: int, threads: int, warmup: int) -> None:
    """The torch engine of `numpybert bench`: times BertModel (eager) on the bench's inputs."""
    from ..bench import make_inputs, serve
    torch.set_num_threads(threads)
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation=ATTN).eval()
    inputs = {k: torch.from_numpy(v) for k, v in make_inputs(model.config.vocab_size, B, T).items()}

    def forward():
        with torch.inference_mode():
            return model(**inputs)

    serve(forward, {"engine": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
                    "attn_implementation": model.config._attn_implementation}, warmup)


def cold_start(model_dir: str) -> None:
    """What a torch user pays in a new process: load, tokenize one sentence, one forward."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation=ATTN).eval()
    with torch.inference_mode():
        model(**tokenizer(["The quick brown fox jumps over the lazy dog."], return_tensors="pt"))
    from ..bench import print_peak_rss
    print_peak_rss()


def st_corpus(model_dir: str, n: int, threads: int) -> None:
    """sentence-transformers' encode on numpybert.bench.make_corpus's texts (the bench's corpus
    throughput): one JSON line, the seconds and texts, as `python -m numpybert.bench corpus` prints."""
    import json
    import time
    from sentence_transformers import SentenceTransformer
    from ..bench import make_corpus
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    texts = make_corpus(model_dir, n)
    model.encode(texts[:64])  # warm up
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32)
    print(json.dumps({"engine": "sentence-transformers", "seconds": time.perf_counter() - t0, "texts": len(texts)}),
          flush=True)


USAGE = ("usage: python -m numpybert.audit.torch_bridge worker MODEL B T THREADS WARMUP\n"
         "       python -m numpybert.audit.torch_bridge cold MODEL\n"
         "       python -m numpybert.audit.torch_bridge st-corpus MODEL N THREADS\n"
         "       python -m numpybert.audit.torch_bridge train-step MODEL B T THREADS STEPS")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"] and len(argv) == 6:
        bench_worker(argv[1], *map(int, argv[2:6]))
        return 0
    if argv[:1] == ["st-corpus"] and len(argv) == 4:
        st_corpus(argv[1], int(argv[2]), int(argv[3]))
        return 0
    if argv[:1] == ["train-step"] and len(argv) == 6:
        training_step_worker(argv[1], *map(int, argv[2:6]))
        return 0
    if argv[:1] == ["cold"] and len(argv) == 2:
        cold_start(argv[1])
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
