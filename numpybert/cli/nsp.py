"""`numpybert nsp TEXT_A TEXT_B`: does B follow A? BERT's next-sentence-prediction head.

Needs a checkpoint with `cls.seq_relationship.*` and the pooler (BertForPreTraining); the
computation is `numpybert.apps.heads.next_sentence`.
"""

import json

from .. import cli


def register(subparsers):
    p = subparsers.add_parser("nsp", help="next-sentence prediction: P(TEXT_B follows TEXT_A)",
                              description="Probability that TEXT_B follows TEXT_A, from the next-sentence-"
                                          "prediction head on the pooled output (cls.seq_relationship.*).")
    p.add_argument("text_a", metavar="TEXT_A", help="the first sentence (segment A)")
    p.add_argument("text_b", metavar="TEXT_B", help="the candidate next sentence (segment B)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    from ..apps.heads import next_sentence
    probs = next_sentence(cli.load_model(args), args.text_a, args.text_b)
    if args.json:
        print(json.dumps(probs))
        return
    print(f"is_next   {probs['is_next']:.4f}  (TEXT_B follows TEXT_A)")
    print(f"not_next  {probs['not_next']:.4f}")
