"""`numpybert fill-mask TEXT [--top-k K]`: the most likely tokens for each [MASK], with probabilities.

Needs a checkpoint with the masked-LM head (`cls.predictions.*`: BertForPreTraining or
BertForMaskedLM); the computation is `numpybert.apps.heads.fill_mask`.
"""

import json

from .. import cli


def register(subparsers):
    p = subparsers.add_parser("fill-mask", help="predict the tokens behind [MASK] (masked-LM head)",
                              description="Print the top-k tokens for each [MASK] in TEXT with their softmax "
                                          "probabilities. Needs a checkpoint with the masked-LM head "
                                          "(cls.predictions.*).")
    p.add_argument("text", metavar="TEXT", help='a sentence with one or more [MASK], e.g. "Paris is the [MASK] of France."')
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="tokens shown per [MASK] (default: 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    from ..apps.heads import fill_mask
    predictions = fill_mask(cli.load_model(args), args.text, args.top_k)
    if args.json:
        print(json.dumps(predictions, ensure_ascii=False, indent=1))
        return
    for n, candidates in enumerate(predictions, start=1):
        print(f"[MASK] {n} of {len(predictions)}:")
        for c in candidates:
            token = c["token"] if c["token"] is not None else f"(id {c['token_id']}: not in the tokenizer's vocabulary)"
            print(f"  {c['score']:.4f}  {token}")
