"""`numpybert classify TEXT [TEXT ...] [--pair TEXT]`: label probabilities from a fine-tuned classifier.

Needs a BertForSequenceClassification checkpoint (`classifier.*`, labels from config.json's
id2label); the computation is `numpybert.apps.heads.classify`.
"""

import json

from .. import cli


def register(subparsers):
    p = subparsers.add_parser("classify", help="label probabilities from a sequence-classification head",
                              description="Classify each TEXT with the checkpoint's classifier head "
                                          "(classifier.*, labels from config.json's id2label).")
    p.add_argument("texts", nargs="+", metavar="TEXT", help="one or more texts")
    p.add_argument("--pair", metavar="TEXT", help="a second segment for every TEXT (sentence-pair classifiers)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    from ..apps.heads import classify
    pairs = None if args.pair is None else [args.pair] * len(args.texts)
    results = classify(cli.load_model(args), args.texts, pairs)
    if args.json:
        print(json.dumps([{"text": t, "labels": r} for t, r in zip(args.texts, results)], ensure_ascii=False,
                         indent=1))
        return
    for text, labels in zip(args.texts, results):
        print(f"{labels[0]['label']}\t" + "  ".join(f"{x['label']} {x['score']:.4f}" for x in labels) + f"\t{text}")
