"""`numpybert attention TEXT --layer L --head H [--plot FILE.png]`: one head's attention map.

Prints the probabilities `attentions[L][0, H]` ([T, T]: each query row sums to 1) with the
tokens as labels; --plot draws the same matrix as a heat map (needs matplotlib).
"""

import sys

import numpy as np

from .. import cli
from ..errors import InputValueError


def register(subparsers):
    p = subparsers.add_parser("attention", help="print or plot one attention head for a text",
                              description="Print (or plot) the attention probabilities of one layer and head.")
    p.add_argument("text", metavar="TEXT", help="the sentence (segment A)")
    p.add_argument("--pair", metavar="TEXT", help="a second sentence (segment B)")
    p.add_argument("--layer", type=int, required=True, metavar="L", help="layer index, 0 .. L-1")
    p.add_argument("--head", type=int, required=True, metavar="H", help="head index, 0 .. N-1")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the map as a heat map (needs matplotlib)")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    model = cli.load_model(args)  # checks --plot first
    check_layer_head(args.layer, args.head, model.config)
    note = cli.truncation_note(model, args.text, args.pair)
    if note:
        print(note, file=sys.stderr)
    probs, tokens = attention_map(model, args.text, args.pair, args.layer, args.head)
    print("\n".join(matrix_lines(probs, tokens, args.layer, args.head, model.config)))
    if args.plot:
        from ..teach.plots import plot_attention
        plot_attention(probs, tokens, args.layer, args.head, args.plot)
        print(f"\nplot written to {args.plot}")


def check_layer_head(layer: int, head: int, config) -> None:
    L, N = config.num_hidden_layers, config.num_attention_heads
    if not 0 <= layer < L:
        raise InputValueError(f"--layer {layer}: this model has {L} layers, numbered 0 to {L - 1}")
    if not 0 <= head < N:
        raise InputValueError(f"--head {head}: this model has {N} heads per layer, numbered 0 to {N - 1}")


def attention_map(model, text: str, pair, layer: int, head: int):
    """The [T, T] probabilities of one head for one input, and the tokens labelling them."""
    batch = model.tokenize([text], None if pair is None else [pair], truncation=True)
    out = model(**batch, output_attentions=True)
    tokens = model.tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    return out.attentions[layer][0, head], tokens  # [B, N, T, T] -> [T, T]


def matrix_lines(probs: np.ndarray, tokens: list, layer: int, head: int, config) -> list:
    """The matrix as text: one row per query token, one column per key (numbered as the rows)."""
    T = len(tokens)
    lines = [f"layer {layer} of {config.num_hidden_layers}, head {head} of {config.num_attention_heads}: "
             "attentions[layer][0, head], rows = queries, columns = keys, each row sums to 1",
             "    query \\ key   " + "".join(f"{k:>5}" for k in range(T))]
    for q in range(T):
        lines.append(f"{q:>3} {tokens[q]:<14.14}" + "".join(f"{p:5.2f}" for p in probs[q]))
    return lines
