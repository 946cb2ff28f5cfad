"""`numpybert encode TEXT [TEXT ...]`: what you would print from transformers' BertModel, without torch.

    numpybert encode "Hello world"                          # pooler_output, as a table
    numpybert encode "Hello world" --output embedding       # the sentence embedding, exactly model.encode
    cat texts.txt | numpybert encode - --output embedding --format npy > e.npy   # one text per line
    numpybert encode "How old are you?" --pair "I am six."  # a sentence pair (token_type_ids 0/1)
    numpybert encode "a" "b" --output sequence --format json
    numpybert encode "a" --output tfhub --format npy > out.npz

Texts are tokenized as `tokenizer(texts, padding=True, truncation=True)` would: padded to the
longest, cut to max_position_embeddings. `--output embedding` is `model.encode(texts)` instead
(numpybert/apps/encode.py: the model directory's pooling, normalization and max_seq_length, as
sentence-transformers' `SentenceTransformer.encode`).
"""

import argparse
import io
import json
import sys

import numpy as np

from .. import cli
from ..errors import InputValueError

OUTPUTS = ("pooled", "sequence", "cls", "tfhub", "all", "embedding")
OUTPUT_HELP = """what to print (default: pooled):
  pooled     pooler_output, tanh(W·h_[CLS] + b): BERT's next-sentence feature, untrained in sentence-transformers models
  sequence   last_hidden_state [B, T, H]: one vector per token
  cls        last_hidden_state[:, 0]: the [CLS] token's vector
  tfhub      TF Hub's sequence_output, pooled_output, default, encoder_outputs
  all        last_hidden_state, pooler_output, hidden_states, attentions
  embedding  model.encode's sentence embedding: what a sentence-transformers model is trained to give"""
FORMATS = ("table", "json", "npy")
EDGE = 4  # a table row shows the first EDGE and the last 2 values of a vector


def register(subparsers):
    p = subparsers.add_parser("encode", help="run texts through the model and print its outputs",
                              formatter_class=argparse.RawTextHelpFormatter,
                              description="Run texts through the model and print what transformers' "
                                          "BertModel would return, without torch,\nor (--output embedding) "
                                          "the sentence embedding model.encode gives.")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="one or more texts (segment A); - reads them from "
                                                            "stdin, one text per line")
    p.add_argument("--pair", action="append", metavar="TEXT",
                   help="the second segment (B); give it once per TEXT")
    p.add_argument("--output", choices=OUTPUTS, default="pooled", help=OUTPUT_HELP)
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="with --output embedding: L2-normalize (default: the model directory's)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table: readable summary; json: every value; npy: binary on stdout, .npy for one "
                        "array, .npz for tfhub/all (default: table)")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    if args.texts == ["-"]:
        args.texts = read_stdin_texts()
    if args.normalize is not None and args.output != "embedding":
        raise InputValueError("--normalize applies to --output embedding")
    if args.output == "embedding" and args.pair is not None:
        raise InputValueError("--output embedding embeds single texts; --pair does not apply")
    if args.pair is not None and len(args.pair) != len(args.texts):
        raise InputValueError(f"got {len(args.pair)} --pair for {len(args.texts)} TEXT; give --pair once per TEXT")
    if args.format == "npy" and sys.stdout.isatty():
        raise InputValueError("--format npy writes binary; redirect it to a file, e.g. > out.npy")
    model = cli.load_model(args)
    batch = model.tokenize(args.texts, args.pair, truncation=True)
    if args.output == "embedding":
        arrays = {"embedding": model.encode(args.texts, normalize=args.normalize)}
    else:
        out = model(**batch, output_hidden_states=args.output == "all", output_attentions=args.output == "all")
        arrays = select(out, args.output)
    tokens = [model.tokenizer.convert_ids_to_tokens(row) for row in batch["input_ids"]]
    if args.format == "table":
        print("\n".join(table(arrays, tokens, batch["attention_mask"], args.texts)))
    elif args.format == "json":
        json.dump(as_json(args, model, batch, tokens, arrays), sys.stdout)
        print()
    else:
        write_npy(arrays, sys.stdout.buffer)


def read_stdin_texts() -> list:
    """`-`: one text per line from stdin (the line ending removed), as `numpybert embed` reads a text file."""
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputValueError(f"stdin is not valid UTF-8 (byte {e.start})") from None
    texts = text.splitlines()
    if not texts:
        raise InputValueError("no texts on stdin (one text per line)")
    return texts


def select(out, output: str) -> dict:
    """The arrays one --output asks for, under the names transformers / TF Hub give them.
    A value is an array, or a tuple of arrays (one per layer)."""
    if output == "pooled":
        return {"pooler_output": out.pooler_output}
    if output == "sequence":
        return {"last_hidden_state": out.last_hidden_state}
    if output == "cls":
        return {"cls": out.last_hidden_state[:, 0]}
    if output == "tfhub":
        hub = out.tfhub()
        return {"sequence_output": hub["sequence_output"], "pooled_output": hub["pooled_output"],
                "default": hub["default"], "encoder_outputs": tuple(hub["encoder_outputs"])}
    return {"last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output,
            "hidden_states": out.hidden_states, "attentions": out.attentions}


# ----------------------------------------------------------------------------- table

def table(arrays: dict, tokens: list, mask: np.ndarray, texts: list) -> list:
    """A readable summary: one line per text ([B, H]) or per real token ([B, T, H])."""
    lines = []
    for name, value in arrays.items():
        if isinstance(value, tuple):
            lines += _stack_lines(name, value, tokens, mask, texts)
        else:
            lines += [f"{_label(name)}  shape {list(value.shape)} {value.dtype}",
                      *_rows(value, tokens, mask, texts)]
    return lines


def _label(name: str) -> str:
    return "cls = last_hidden_state[:, 0]" if name == "cls" else name


def _stack_lines(name, arrays, tokens, mask, texts) -> list:
    head = f"{name}  {len(arrays)} × shape {list(arrays[0].shape)} {arrays[0].dtype}"
    if arrays[0].ndim == 4:  # attentions: B·N·T rows per layer, too many to print
        return [head, "  (probabilities per head: use --format json or npy, or `numpybert attention`)"]
    lines = [head]
    for i, a in enumerate(arrays):
        lines += [f"{name}[{i}]", *_rows(a, tokens, mask, texts)]
    return lines


def _rows(a: np.ndarray, tokens, mask, texts) -> list:
    if a.ndim == 2:  # [B, H]
        return [f"  [{b}] {_vec(a[b])}  {_short(texts[b])}" for b in range(a.shape[0])]
    lines = []
    for b in range(a.shape[0]):  # [B, T, H]: real tokens only
        for t in np.flatnonzero(mask[b]):
            lines.append(f"  [{b}, {t:>2}] {tokens[b][t]:<12.12} {_vec(a[b, t])}")
    if not mask.all():
        lines.append("  (padding positions not shown)")
    return lines


def _vec(x: np.ndarray) -> str:
    shown = " ".join(f"{v:+.4f}" for v in x[:EDGE])
    if len(x) > EDGE + 2:
        shown += " ... " + " ".join(f"{v:+.4f}" for v in x[-2:])
    return f"[{shown}]  norm {np.linalg.norm(x.astype(np.float64)):.4f}"


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# ----------------------------------------------------------------------------- json and npy

def as_json(args, model, batch, tokens, arrays) -> dict:
    """Inputs and outputs with every value (float32 values print exactly as JSON doubles)."""
    inputs = {"texts": args.texts, "pairs": args.pair}
    if args.output != "embedding":  # model.encode tokenizes with its own max_seq_length
        inputs.update(tokens=tokens, **{k: v.tolist() for k, v in batch.items()})
    return {
        "model": str(model.model_dir), "dtype": model.dtype.name, "output": args.output, "inputs": inputs,
        "outputs": {k: [a.tolist() for a in v] if isinstance(v, tuple) else v.tolist()
                    for k, v in arrays.items()},
    }


def flat_arrays(arrays: dict) -> dict:
    """{"encoder_outputs": (a, b)} -> {"encoder_outputs.0": a, "encoder_outputs.1": b}."""
    flat = {}
    for name, value in arrays.items():
        if isinstance(value, tuple):
            flat.update({f"{name}.{i}": a for i, a in enumerate(value)})
        else:
            flat[name] = value
    return flat


def write_npy(arrays: dict, stream) -> None:
    """One array: the .npy format; several: an .npz archive (np.load reads either)."""
    flat = flat_arrays(arrays)
    buffer = io.BytesIO()
    if len(flat) == 1:
        np.save(buffer, next(iter(flat.values())))
    else:
        np.savez(buffer, **flat)
    stream.write(buffer.getvalue())
    stream.flush()
