"""`numpybert info [MODEL]`: what a checkpoint directory holds, and what the loader did with it."""


from .. import cli
from ..errors import InputValueError, NumpybertError
from ..apps.st_config import sentence_transformers_pooling


def register(subparsers):
    p = subparsers.add_parser("info", help="config summary, parameter count and loader manifest of a model",
                              description="Show a model's config, parameter count and the loader's manifest.")
    p.add_argument("model_dir", nargs="?", metavar="MODEL", help="checkpoint directory (default: as --model)")
    cli.add_model_argument(p)
    p.set_defaults(run=run, model=None)  # None: tell `--model X` from the default


def run(args):
    if args.model_dir is not None and args.model is not None:
        raise InputValueError("give the model directory as MODEL or as --model, not both")
    args.model = args.model_dir or args.model
    model = cli.load_model(args)
    print("\n".join(info_lines(model)))


def parameter_counts(flat_params: dict) -> dict:
    """Parameters per top-level group (embeddings, encoder, pooler, cls, classifier), and "total".
    Tied tensors (the MLM decoder is the word embedding matrix) are counted once."""
    counts, seen = {}, set()
    for name, array in flat_params.items():
        if id(array) in seen:
            continue
        seen.add(id(array))
        group = name.split(".")[0]
        counts[group] = counts.get(group, 0) + array.size
    counts["total"] = sum(counts.values())
    return counts


def info_lines(model) -> list:
    c, counts = model.config, parameter_counts(model.flat_params)
    lines = [f"model       {model.model_dir}",
             f"config      {c.summary()}",
             f"parameters  {counts['total']:,} ({counts['total'] / 1e6:.1f} M)"]
    lines += [f"  {group:<11} {n:>12,}" for group, n in counts.items() if group != "total"]
    pooled = "pooler_output [B, H]" if model.has_pooler else "no pooler_output (no pooler weights)"
    lines += [f"outputs     last_hidden_state [B, T, {c.hidden_size}], {pooled}, "
              f"{c.num_hidden_layers + 1} hidden_states, {c.num_hidden_layers} attentions "
              f"[B, {c.num_attention_heads}, T, T]",
              f"tokenizer   {_tokenizer_line(model)}"]
    pooling = sentence_transformers_pooling(model.model_dir)
    if pooling:
        lines.append(f"sentence-transformers pooling: {'+'.join(pooling)}")
    return lines + ["loader manifest:", *("  " + line for line in str(model.manifest).splitlines())]


def _tokenizer_line(model) -> str:
    try:
        tokenizer = model.tokenizer
    except NumpybertError as e:
        return f"none: {e} (text commands need one)"
    return f"{tokenizer.source} (vocab {tokenizer.vocab_size:,})"
