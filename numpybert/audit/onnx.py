"""Audit a deployed ONNX graph: how far is it from the real model, where does its error come
from, and does that matter for the user's task?

    report = audit_graph("model.int8.onnx", "weights/all-MiniLM-L6-v2", inputs, ranking_inputs)
    print(render_graph_report(report)); report_graph_json(report)

The graph runs in ONNX Runtime on the same token ids as numpybert's reference model in float32
(the thing it should equal) and in float64 (the exact answer). What is compared:
  * the graph's outputs, recognised by name and shape (last_hidden_state / sequence_output,
    pooler_output / pooled_output, a sentence embedding);
  * its intermediates where the graph exposes them: the outputs of its LayerNorm nodes
    (LayerNormalization, or the fused EmbedLayerNormalization / SkipLayerNormalization), which in
    topological order are the embedding output, then each layer's attention output and layer output;
    Softmax outputs (attention probabilities); Gelu / FastGelu / BiasGelu nodes, or the
    x * 0.5 * (1 + Erf(x / sqrt 2)) chain (the intermediate activation). They are added as extra
    graph outputs; what cannot be mapped is said.
Errors are judged at real tokens with numpybert's float32 tolerances. Padded positions are reported
apart, never judged: exported graphs compute them differently (another mask value, a fused kernel)
and nothing downstream reads them. Each tensor's error against float64 sits next to numpybert
float32's own: how much of the graph's error is its precision or approximation (int8, float16, a
tanh GELU) and how much is float32 rounding. Then the task: per-text cosine of the graph's sentence
embeddings (mean pooling) to the reference's, and agreement of nearest-neighbour rankings.

The only module of numpybert that imports onnx and onnxruntime (the `onnx` extra), lazily.
"""

import dataclasses
import math
import os

import numpy as np

from ..apps.pooling import l2_normalize, pool
from ..errors import InputValueError, NumpybertError, install_hint
from .stats import TOLERANCES, Stats, error_stats, number, real_positions, sci, stats_json, tolerance_scale

INSTALL = install_hint("onnx")

# Graph input names, in the order tried: transformers / optimum exports, TF Hub, tf2onnx.
INPUT_NAMES = {"input_ids": ("input_ids", "input_word_ids"),
               "attention_mask": ("attention_mask", "input_mask"),
               "token_type_ids": ("token_type_ids", "input_type_ids", "segment_ids")}
OUTPUT_NAMES = {"last_hidden_state": ("last_hidden_state", "sequence_output", "token_embeddings"),
                "pooler_output": ("pooler_output", "pooled_output", "default"),
                "sentence_embedding": ("sentence_embedding", "sentence_embeddings", "embeddings", "embedding")}
LAYER_NORM_OPS = ("LayerNormalization", "SkipLayerNormalization", "EmbedLayerNormalization")
GELU_OPS = ("Gelu", "FastGelu", "BiasGelu")
FUSED_ATTENTION_OPS = ("Attention", "MultiHeadAttention", "PackedAttention", "QAttention")
ELEMENTWISE = ("Add", "Mul", "Div")  # the ops of an exported exact GELU after its Erf

# Cosine of the graph's last_hidden_state to numpybert's at real tokens, measured: a float32
# export 1 - 4e-13, float16 1 - 4e-7, quantize_dynamic's int8 0.955 (MiniLM, QInt8: its default
# also quantizes the embedding tables); another checkpoint of the same shape ~0 (tiny-bert
# against a re-seeded twin: see tests/audit/test_audit_onnx.py). Below this it is another model.
SAME_MODEL_MIN_COSINE = 0.5
NEIGHBOURS = 5  # top-k of the ranking agreement
RANDOM_LENGTHS = (3, 5, 6, 8, 9, 11, 12, 14, 16, 17, 19, 20)  # ranking rows of a model without a tokenizer

# A small built-in retrieval set: four topics, six sentences each, so that nearest neighbours
# mean something (each text's neighbours are mostly its own topic).
RANKING_TEXTS = (
    "The cat slept on the warm windowsill all afternoon.",
    "My dog loves chasing the ball in the park.",
    "Kittens need to be fed several times a day.",
    "The vet said our puppy is healthy and growing fast.",
    "A parrot can learn to repeat dozens of words.",
    "Goldfish are easy pets for small apartments.",
    "The central bank raised interest rates again this quarter.",
    "Stock markets fell sharply after the earnings report.",
    "Inflation is eroding the savings of many households.",
    "The company announced record profits and a share buyback.",
    "Mortgage payments rise when interest rates go up.",
    "Investors moved their money into government bonds.",
    "Add the flour slowly and stir until the batter is smooth.",
    "Roast the vegetables in a hot oven for forty minutes.",
    "This soup tastes better with fresh basil and garlic.",
    "Let the dough rest overnight before baking the bread.",
    "Whisk the eggs with sugar until pale and fluffy.",
    "Season the steak with salt and pepper before grilling.",
    "The team scored in the final minute to win the match.",
    "She trained for months to run her first marathon.",
    "The goalkeeper saved a penalty in extra time.",
    "Tennis players must adapt quickly to grass courts.",
    "The cyclists climbed the mountain pass in heavy rain.",
    "Our coach wants us to practise passing every day.",
)


# ----------------------------------------------------------------------------- errors, imports

class OnnxAuditError(NumpybertError, ValueError):
    """An ONNX graph cannot be read or run, or does not fit the model it is audited against."""


def runtime():
    """(onnx, onnxruntime), imported on first use: the optional `onnx` extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise OnnxAuditError(f"auditing an ONNX graph needs onnx and onnxruntime ({e}); install the onnx "
                             f"extra: {INSTALL}") from None
    onnxruntime.set_default_logger_severity(4)  # errors come back as exceptions, said in one line
    return onnx, onnxruntime


def load_reference(model_dir, dtype: str):
    """numpybert's reference model (numpybert/reference.py, the plain textbook forward) in `dtype`."""
    from .. import load
    return load(model_dir, dtype=dtype, engine="reference")


# ----------------------------------------------------------------------------- reading the graph

@dataclasses.dataclass
class Graph:
    """An ONNX file, read: what it takes, returns and holds."""
    path: str
    proto: object  # onnx.ModelProto
    inputs: dict  # role (input_ids, ...) -> (graph input name, numpy int dtype)
    seq_len: int | None  # a fixed sequence length (TF Hub style), else None
    batch: int | None  # a fixed batch size, else None
    precision: str  # float32, float16 or int8: the graph's weights
    made_by: str  # metadata_props / producer

    @property
    def nodes(self):
        return self.proto.graph.node


def read_graph(path) -> Graph:
    """Read an ONNX file and recognise its inputs; one clear error for anything else."""
    onnx, _ = runtime()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        proto = onnx.load(path)
    except Exception as e:  # protobuf's DecodeError and friends
        raise OnnxAuditError(f"{path}: not an ONNX model ({type(e).__name__}: {str(e)[:200]})") from None
    inits = {i.name for i in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in inits]
    inputs, dims = {}, []
    for role, names in INPUT_NAMES.items():
        found = next((i for i in graph_inputs if i.name in names), None)
        if found is not None:
            elem = found.type.tensor_type.elem_type
            if elem not in (onnx.TensorProto.INT32, onnx.TensorProto.INT64):
                raise OnnxAuditError(f"{path}: input {found.name!r} is {onnx.TensorProto.DataType.Name(elem)}, "
                                     "expected int32 or int64 token ids")
            inputs[role] = (found.name, np.int32 if elem == onnx.TensorProto.INT32 else np.int64)
            dims.append([d.dim_value or None for d in found.type.tensor_type.shape.dim])
    unknown = [i.name for i in graph_inputs if i.name not in {n for n, _ in inputs.values()}]
    if "input_ids" not in inputs or unknown:
        raise OnnxAuditError(f"{path}: graph inputs {[i.name for i in graph_inputs]}; numpybert feeds "
                             f"{' / '.join(n for names in INPUT_NAMES.values() for n in names)} only"
                             + (f" (unknown: {unknown})" if unknown else ""))
    batch = next((d[0] for d in dims if len(d) == 2 and d[0]), None)
    seq_len = next((d[1] for d in dims if len(d) == 2 and d[1]), None)
    made_by = {p.key: p.value for p in proto.metadata_props}.get("numpybert.made_by") or \
        " ".join(filter(None, (proto.producer_name, proto.producer_version)))
    return Graph(path, proto, inputs, seq_len, batch, _precision(proto), made_by)


def _precision(proto) -> str:
    """What most of the graph's weight elements are stored as."""
    import onnx
    counts = {}
    for init in proto.graph.initializer:
        name = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
                onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "int8",
                onnx.TensorProto.DOUBLE: "float64"}.get(init.data_type)
        if name:
            counts[name] = counts.get(name, 0) + math.prod(init.dims)
    return max(counts, key=counts.get) if counts else "unknown"


# ----------------------------------------------------------------------------- mapping its tensors

@dataclasses.dataclass(frozen=True)
class Mapping:
    """Which graph tensors hold which numpybert trace tensors, and what could not be mapped."""
    tensors: dict  # numpybert name -> graph tensor name
    unmapped: list  # one sentence per thing numpybert records that the graph does not expose
    layer_norm_nodes: int


def map_tensors(graph: Graph, num_layers: int) -> Mapping:
    """Map LayerNorm, Softmax and GELU node outputs, in topological order, to numpybert's names."""
    nodes, L = list(graph.nodes), num_layers
    tensors, unmapped = {}, []
    norms = [n.output[0] for n in nodes if n.op_type in LAYER_NORM_OPS]
    if len(norms) == 2 * L + 1:
        names = ["embeddings.output"] + [f"encoder.layer.{i}.{part}" for i in range(L)
                                         for part in ("attention.output", "output")]
        tensors.update(zip(names, norms))
    else:
        unmapped.append(f"hidden states: {len(norms)} LayerNorm nodes, expected 2 per layer + 1 = {2 * L + 1}")
    softmax = [n.output[0] for n in nodes if n.op_type == "Softmax"]
    fused = sorted({n.op_type for n in nodes if n.op_type in FUSED_ATTENTION_OPS})
    if len(softmax) == L:
        tensors.update({f"encoder.layer.{i}.attention.self.probs": s for i, s in enumerate(softmax)})
    elif fused:
        unmapped.append(f"attention probabilities: inside fused {'/'.join(fused)} nodes, not exposed")
    else:
        unmapped.append(f"attention probabilities: {len(softmax)} Softmax nodes, expected {L}")
    gelus = _gelu_outputs(nodes)
    if len(gelus) == L:
        tensors.update({f"encoder.layer.{i}.intermediate.output": g for i, g in enumerate(gelus)})
    else:
        unmapped.append(f"intermediate activations: {len(gelus)} Gelu/Erf nodes, expected {L}")
    unmapped.append("query, key, value, scores and context: no node type marks them")
    order = {name: i for i, name in enumerate(trace_order(L))}
    return Mapping(dict(sorted(tensors.items(), key=lambda kv: order[kv[0]])), unmapped, len(norms))


def _gelu_outputs(nodes) -> list:
    """Outputs of fused GELU nodes, or of exported exact GELUs: Erf, then the Add/Mul/Div chain
    after it (x * 0.5 * (1 + erf(x / sqrt 2))), up to the next other op."""
    consumers = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    outputs = []
    for n in nodes:
        if n.op_type in GELU_OPS:
            outputs.append(n.output[0])
        elif n.op_type == "Erf":
            out = n.output[0]
            while len(consumers.get(out, ())) == 1 and consumers[out][0].op_type in ELEMENTWISE:
                out = consumers[out][0].output[0]
            outputs.append(out)
    return outputs


def trace_order(num_layers: int) -> list:
    """The names this audit can map, in numpybert's forward order."""
    names = ["embeddings.output"]
    for i in range(num_layers):
        p = f"encoder.layer.{i}"
        names += [f"{p}.attention.self.probs", f"{p}.attention.output", f"{p}.intermediate.output", f"{p}.output"]
    return names


# ----------------------------------------------------------------------------- running it

def session(graph: Graph, extra_outputs=()):
    """An ONNX Runtime CPU session of the graph with `extra_outputs` added as graph outputs."""
    onnx, ort = runtime()
    proto = graph.proto
    present = {o.name for o in proto.graph.output}
    extra = [name for name in extra_outputs if name not in present]
    if extra:
        proto = onnx.ModelProto()
        proto.CopyFrom(graph.proto)
        proto.graph.output.extend(onnx.ValueInfoProto(name=name) for name in extra)
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph types
        raise OnnxAuditError(f"{graph.path}: ONNX Runtime cannot load it: {_first_line(e)}") from None


def run(graph: Graph, inputs: dict, extra_outputs=(), sess=None) -> dict:
    """Every output (graph outputs and `extra_outputs`) by tensor name, as NumPy arrays.
    `sess`: a session made by `session(graph, extra_outputs)`, to reuse (a large graph takes seconds).
    A graph with a fixed batch of 1, or without an attention_mask input (it cannot skip padding),
    runs one row at a time, each cut to its real tokens; outputs are padded back with zeros."""
    sess = sess or session(graph, extra_outputs)
    names = [o.name for o in sess.get_outputs()]
    feeds = {name: np.ascontiguousarray(inputs[role], dtype=dtype) for role, (name, dtype) in graph.inputs.items()}
    mask = inputs["attention_mask"]
    unmasked = "attention_mask" not in graph.inputs and not mask.all()
    if graph.batch is None and not unmasked:
        rows = [(feeds, None)]
    else:
        T = mask.shape[1]
        lengths = mask.sum(axis=1) if unmasked else [T] * len(mask)
        rows = [({k: v[b:b + 1, :lengths[b]] for k, v in feeds.items()}, int(lengths[b])) for b in range(len(mask))]
    try:
        results = [(sess.run(names, row), t) for row, t in rows]
    except Exception as e:
        raise OnnxAuditError(f"{graph.path}: ONNX Runtime failed on the inputs: {_first_line(e)}") from None
    T = mask.shape[1]
    return {name: np.concatenate([_pad_tokens(r[i], t, T) for r, t in results]) for i, name in enumerate(names)}


def _pad_tokens(a: np.ndarray, t: int | None, T: int) -> np.ndarray:
    """One row's output computed on t tokens, zero-padded to T on its token axes."""
    if t is None or t == T:
        return a
    axes = {3: (1,), 4: (2, 3)}.get(a.ndim, ())  # [1, t, H] / [1, N, t, t]; [1, H] has none
    return np.pad(a, [(0, T - t) if axis in axes else (0, 0) for axis in range(a.ndim)])


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def fit_inputs(graph: Graph, inputs: dict, cut: bool = False) -> dict:
    """The inputs padded to the graph's fixed sequence length, if it has one (TF Hub's 128), or
    with `cut` cut to it (the ranking set: both sides see the same ids); token_type_ids filled
    with zeros when absent."""
    inputs = dict(inputs)
    inputs.setdefault("token_type_ids", np.zeros_like(inputs["input_ids"]))
    inputs.setdefault("attention_mask", np.ones_like(inputs["input_ids"]))
    T = inputs["input_ids"].shape[1]
    if graph.seq_len is None or graph.seq_len == T:
        return inputs
    if T > graph.seq_len and cut:
        return {k: v[:, :graph.seq_len] for k, v in inputs.items()}  # [B, T] -> [B, S]
    if T > graph.seq_len:
        raise InputValueError(f"{graph.path} takes exactly {graph.seq_len} tokens, the inputs have {T}: "
                              "use shorter texts")
    return {k: np.pad(v, ((0, 0), (0, graph.seq_len - T))) for k, v in inputs.items()}  # [B, T] -> [B, S]


def recognise_outputs(sess_outputs: dict, graph_output_names: list, hidden_size: int) -> tuple:
    """({numpybert output name: graph output name}, [names not recognised])."""
    found, ignored = {}, []
    for name in graph_output_names:
        a = sess_outputs[name]
        role = next((r for r, names in OUTPUT_NAMES.items() if name in names), None)
        if role is None and a.ndim == 3 and a.shape[-1] == hidden_size:
            role = "last_hidden_state"
        ok = role and a.ndim == (3 if role == "last_hidden_state" else 2) and a.shape[-1] == hidden_size
        if ok and role not in found:
            found[role] = name
        else:
            ignored.append(name)
    return found, ignored


# ----------------------------------------------------------------------------- the reference side

def reference_tensors(model, inputs: dict) -> dict:
    """numpybert's trace plus its outputs, by numpybert name."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = model(**inputs, record=True)
    tensors = dict(out.trace)
    tensors["last_hidden_state"] = out.last_hidden_state
    if model.has_pooler:
        tensors["pooler_output"] = out.pooler_output
    return tensors


def sentence_embeddings(outputs: dict, names: dict, mask: np.ndarray) -> np.ndarray:
    """The graph's sentence embeddings: its own output if it has one, else mean pooling."""
    if "sentence_embedding" in names:
        return outputs[names["sentence_embedding"]].astype(np.float64)
    return pool(outputs[names["last_hidden_state"]].astype(np.float64), mask, "mean")


# ----------------------------------------------------------------------------- the report

@dataclasses.dataclass(frozen=True)
class GraphRow:
    """One tensor: the graph's value against numpybert's reference float32 (and float64)."""
    name: str  # numpybert's name
    graph_name: str  # the graph's tensor
    shape: tuple
    real: Stats | None  # graph vs reference float32, real tokens: what is judged
    padded: Stats | None  # the same at padded positions: reported, not judged (None: no padding)
    graph_vs_fp64: Stats | None  # the error budget at real tokens: the graph's error ...
    numpybert_vs_fp64: Stats | None  # ... next to numpybert float32's (the float32 noise)
    tolerance: float  # max abs allowed at real tokens, scaled to the tensor
    problem: str = ""

    @property
    def passed(self) -> bool:  # `<=` is False for NaN
        return not self.problem and self.real.max_abs <= self.tolerance


@dataclasses.dataclass(frozen=True)
class TaskReport:
    """What the graph's error does to sentence embeddings and retrieval on the built-in set."""
    texts: int
    cosine_min: float  # graph vs reference sentence embedding, per text
    cosine_mean: float
    top1: float  # share of queries whose nearest neighbour is the same
    top5: float  # mean overlap of the top-5 neighbour sets
    embedding: str  # how sentence embeddings were taken


@dataclasses.dataclass
class GraphReport:
    graph: str
    model: str
    precision: str
    made_by: str
    inputs: dict  # the audit batch (input_ids, attention_mask)
    graph_inputs: dict  # role -> graph input name and dtype
    outputs: dict  # numpybert output name -> graph output name
    ignored_outputs: list
    mapping: Mapping
    rows: list  # GraphRow, forward order: intermediates, then outputs
    task: TaskReport

    @property
    def first_divergence(self) -> GraphRow | None:
        return next((r for r in self.rows if not r.passed), None)

    @property
    def passed(self) -> bool:
        return self.first_divergence is None


def padded_positions(mask: np.ndarray, shape: tuple):
    """Boolean index of padded positions in a tensor's shape, or None when there are none."""
    if len(shape) == 2 or mask.all():
        return None
    return ~real_positions(mask, shape)


def compare_row(name: str, graph_name: str, ours, ref32, ref64, mask) -> GraphRow:
    """One row; `ours` is the graph's tensor, `ref32` / `ref64` numpybert's reference."""
    if ours.shape != ref32.shape:
        return GraphRow(name, graph_name, ref32.shape, None, None, None, None, 0.0,
                        f"graph shape {list(ours.shape)}, numpybert {list(ref32.shape)}")
    tolerance = TOLERANCES["float32"].real * tolerance_scale(ref32)
    real, padded = real_positions(mask, ref32.shape), padded_positions(mask, ref32.shape)
    exact = real & (np.abs(ref64) < 1e4)  # as the fp64 oracle of `audit`: no additive-mask entries
    return GraphRow(name, graph_name, ref32.shape, error_stats(ours, ref32, real),
                    None if padded is None else error_stats(ours, ref32, padded),
                    error_stats(ours, ref64, exact), error_stats(ref32, ref64, exact), tolerance)


def check_shapes(graph: Graph, model) -> None:
    """Before running: refuse a graph without the model's [vocab_size, hidden_size] embedding table."""
    config = model.config
    tables = [tuple(i.dims) for i in graph.proto.graph.initializer if len(i.dims) == 2]
    if tables and (config.vocab_size, config.hidden_size) not in tables:
        raise OnnxAuditError(f"{graph.path}: no [{config.vocab_size}, {config.hidden_size}] word-embedding table "
                             f"(vocab_size, hidden_size of {model.model_dir}): its weights do not belong to "
                             f"{model.model_dir}")


def check_same_model(graph: Graph, model, outputs: dict, names: dict, ref32: dict, mask) -> None:
    """After running: refuse, in one line, a graph whose outputs cannot come from the model."""
    path = graph.path
    if "last_hidden_state" not in names and "sentence_embedding" not in names:
        raise OnnxAuditError(f"{path}: no output of width {model.config.hidden_size} (last_hidden_state or a "
                             f"sentence embedding): its weights do not belong to {model.model_dir}")
    if "last_hidden_state" in names:
        where = real_positions(mask, ref32["last_hidden_state"].shape)
        got = outputs[names["last_hidden_state"]]
        if not np.isfinite(got[where]).all():
            return  # NaN or Inf: a numerical failure, shown in the table, not another model
        c = error_stats(got, ref32["last_hidden_state"], where).cosine
        if c < SAME_MODEL_MIN_COSINE:
            raise OnnxAuditError(f"{path}: its last_hidden_state has cosine {c:.3f} to {model.model_dir}'s "
                                 f"(an int8 copy has > 0.95): its weights do not belong to {model.model_dir}")


def ranking_agreement(ref: np.ndarray, got: np.ndarray, k: int = NEIGHBOURS) -> tuple:
    """(top-1 agreement, mean top-k overlap) of cosine nearest neighbours, each text a query."""
    def neighbours(x):
        x = l2_normalize(x)
        sims = x @ x.T  # [N, H] @ [H, N] -> [N, N]
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]  # [N, N] -> [N, k]
    a, b = neighbours(ref), neighbours(got)
    top1 = float(np.mean(a[:, 0] == b[:, 0]))
    overlap = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))
    return top1, overlap


def task_report(graph, names, model32, inputs: dict, ranking_inputs: dict, sess=None) -> TaskReport:
    """Sentence-embedding cosine per text (audit texts and ranking set) and ranking agreement."""
    refs, gots = [], []
    for batch in (inputs, ranking_inputs):
        batch = fit_inputs(graph, batch, cut=True)
        outputs = run(graph, batch, sess=sess)
        mask = batch["attention_mask"]
        got = sentence_embeddings(outputs, names, mask)
        ref = pool(model32(**batch).last_hidden_state.astype(np.float64), mask, "mean")
        refs.append(ref)
        gots.append(got)
    ref, got = np.concatenate(refs), np.concatenate(gots)  # [N, H]
    cosines = np.sum(l2_normalize(ref) * l2_normalize(got), axis=1)  # [N, H] -> [N]
    top1, top5 = ranking_agreement(refs[1], gots[1])
    how = "the graph's sentence embedding" if "sentence_embedding" in names else "mean pooling of last_hidden_state"
    return TaskReport(len(ref), float(cosines.min()), float(cosines.mean()), top1, top5, how)


def audit_graph(path, model_dir, inputs: dict, ranking_inputs: dict) -> GraphReport:
    """Run the graph and numpybert's reference on the same ids; compare every mapped tensor."""
    graph = read_graph(path)
    model32, model64 = load_reference(model_dir, "float32"), load_reference(model_dir, "float64")
    check_shapes(graph, model32)
    inputs = fit_inputs(graph, inputs)
    mask = inputs["attention_mask"]
    mapping = map_tensors(graph, model32.config.num_hidden_layers)
    sess = session(graph, list(mapping.tensors.values()))
    outputs = run(graph, inputs, sess=sess)
    graph_outputs = [o.name for o in graph.proto.graph.output]
    names, ignored = recognise_outputs(outputs, graph_outputs, model32.config.hidden_size)
    ref32, ref64 = reference_tensors(model32, inputs), reference_tensors(model64, inputs)
    check_same_model(graph, model32, outputs, names, ref32, mask)
    rows = [compare_row(n, g, outputs[g], ref32[n], ref64[n], mask) for n, g in mapping.tensors.items()]
    for name, graph_name in names.items():
        if name == "sentence_embedding":
            continue  # compared by cosine in the task report (its pooling and normalisation vary)
        if name not in ref32:
            rows.append(GraphRow(name, graph_name, outputs[graph_name].shape, None, None, None, None, 0.0,
                                 f"{model_dir} has no pooler weights to compare with"))
            continue
        rows.append(compare_row(name, graph_name, outputs[graph_name], ref32[name], ref64[name], mask))
    task = task_report(graph, names, model32, inputs, ranking_inputs, sess)
    return GraphReport(graph.path, str(model_dir), graph.precision, graph.made_by,
                       {k: inputs[k] for k in ("input_ids", "attention_mask")},
                       {role: {"name": n, "dtype": np.dtype(d).name} for role, (n, d) in graph.inputs.items()},
                       names, ignored, mapping, rows, task)


# ----------------------------------------------------------------------------- presenting it

def row_json(row: GraphRow) -> dict:
    return {"name": row.name, "graph_tensor": row.graph_name, "shape": list(row.shape), "passed": row.passed,
            "problem": row.problem or None, "tolerance": row.tolerance, "real": stats_json(row.real),
            "padded": stats_json(row.padded),
            "fp64": {"graph": stats_json(row.graph_vs_fp64), "numpybert_fp32": stats_json(row.numpybert_vs_fp64)}}


def report_graph_json(report: GraphReport) -> dict:
    """The report as strict-JSON-ready data."""
    from .. import __version__
    first, mask = report.first_divergence, report.inputs["attention_mask"]
    return {"numpybert_version": __version__, "graph": report.graph, "model": report.model,
            "graph_precision": report.precision, "made_by": report.made_by,
            "graph_inputs": report.graph_inputs, "graph_outputs": report.outputs,
            "ignored_outputs": report.ignored_outputs,
            "inputs": {"shape": list(mask.shape), "real_tokens": int(mask.sum()),
                       "input_ids": report.inputs["input_ids"].tolist(), "attention_mask": mask.tolist()},
            "tolerance": {"real": TOLERANCES["float32"].real, "scaled": True, "padded": "reported, not judged"},
            "passed": report.passed,
            "first_divergence": None if first is None else {"index": report.rows.index(first), **row_json(first)},
            "tensors": [row_json(r) for r in report.rows],
            "unmapped": report.mapping.unmapped,
            "task": {k: number(v) if isinstance(v, float) else v for k, v in dataclasses.asdict(report.task).items()}}


def _input_cell(graph_input: dict) -> str:
    return f"{graph_input['name']} ({graph_input['dtype']})"


def _cell(s: Stats | None, field: str = "max_abs") -> str:
    return "-" if s is None else sci(getattr(s, field))


def render_graph_report(report: GraphReport) -> str:
    """The readable report: header, one line per tensor, verdict, error budget, task."""
    mask = report.inputs["attention_mask"]
    lines = [f"numpybert audit --onnx: {report.graph} ({report.precision} weights) vs numpybert reference "
             f"{report.model}",
             f"graph made by: {report.made_by or 'unknown'}",
             f"graph inputs: {', '.join(_input_cell(v) for v in report.graph_inputs.values())}; "
             f"outputs compared: {', '.join(f'{g} as {n}' for n, g in report.outputs.items()) or 'none'}"
             + (f"; not recognised: {', '.join(report.ignored_outputs)}" if report.ignored_outputs else ""),
             f"inputs: {mask.shape[0]} row(s) × {mask.shape[1]} tokens, {int(mask.sum())} real",
             f"pass: max abs ≤ {TOLERANCES['float32'].real:g} × max(1, max|ref|) at real tokens against numpybert "
             "float32; padded positions shown, not judged", ""]
    lines += rows_table(report.rows, report.first_divergence)
    lines += ["", verdict_line(report), budget_line(report)]
    if report.precision in ("float16", "int8") and not report.passed:
        lines.append(f"({report.precision} weights cannot meet float32 tolerances: judge the graph by the budget "
                     "above and the task line below)")
    lines.append("")
    lines += [f"not mapped: {u}" for u in report.mapping.unmapped]
    t = report.task
    lines += ["", f"task ({t.texts} texts, sentence embeddings by {t.embedding}): cosine to the reference "
                  f"min {t.cosine_min:.7f}, mean {t.cosine_mean:.7f}; nearest neighbours on the built-in set: "
                  f"top-1 agreement {t.top1:.0%}, top-{NEIGHBOURS} overlap {t.top5:.0%}"]
    return "\n".join(lines)


def rows_table(rows: list, first, sides=("graph", "numpybert")) -> list:
    """One line per GraphRow, the first divergence marked; `sides` names the two float64 columns."""
    width = max([len(r.name) for r in rows] + [6])
    lines = [f"{'':<{width}}  {'real tokens':^26}  {'padded':>8}  {'max abs vs float64':^21}",
             f"{'tensor':<{width}}  {'max abs':>8} {'mean abs':>8} {'1-cos':>8}  {'max abs':>8}  "
             f"{sides[0]:>10} {sides[1]:>10}  {'tol':>8}  result"]
    for r in rows:
        cos = "-" if r.real is None else sci(1.0 - min(r.real.cosine, 1.0))
        verdict = "ok" if r.passed else "FAIL" + (" <- first divergence" if r is first else "")
        lines.append(f"{r.name:<{width}}  {_cell(r.real):>8} {_cell(r.real, 'mean_abs'):>8} {cos:>8}  "
                     f"{_cell(r.padded):>8}  {_cell(r.graph_vs_fp64):>10} {_cell(r.numpybert_vs_fp64):>10}  "
                     f"{sci(r.tolerance):>8}  {verdict}" + (f" ({r.problem})" if r.problem else ""))
    return lines


def verdict_line(report: GraphReport) -> str:
    first = report.first_divergence
    if first is None:
        return f"PASS: all {len(report.rows)} tensors within float32 tolerance at real tokens"
    failed = sum(not r.passed for r in report.rows)
    detail = first.problem or (f"max abs {sci(first.real.max_abs)} at real tokens "
                               f"(tolerance {sci(first.tolerance)}), graph tensor {first.graph_name!r}")
    return f"FAIL: {failed} of {len(report.rows)} tensors; first divergence: {first.name}: {detail}"


def budget_line(report: GraphReport) -> str:
    """The error budget on the last output: the graph's own error against float32 noise."""
    rows = [r for r in report.rows if r.graph_vs_fp64 is not None]
    row = next((r for r in rows if r.name == "last_hidden_state"), rows[-1] if rows else None)
    if row is None:
        return "error budget: no tensor to compare"
    g, n = row.graph_vs_fp64.max_abs, row.numpybert_vs_fp64.max_abs
    head = f"error budget ({row.name}, real tokens, max abs vs float64): graph {sci(g)}, numpybert float32 {sci(n)}"
    if g <= 2 * n:
        return f"{head}: the graph's error is float32 rounding noise"
    share = 1 - n / g
    return (f"{head}: the graph's error is {g / n:.0f}× float32 noise; ~{share:.0%} of it comes from the graph's "
            f"precision ({report.precision}) or approximations, not from float32 rounding")
