"""`numpybert embed INPUT --out OUT.npy`: embed a file of texts (one per line, or JSONL) into a .npy.

Streaming, resumable after any kill, never overwriting OUT without --overwrite; see
numpybert/corpus.py for how, and docs/embedding-a-corpus.md for the user's guide.
"""

import argparse
import sys

from .. import cli
from ..apps.encode import MAX_BATCH_TOKENS, POOLING_MODES, WINDOW


def register(subparsers):
    p = subparsers.add_parser("embed", help="embed a corpus file into a float32 .npy (resumable)",
                              description="Embed every line of INPUT (text: one text per line; JSONL: one object "
                                          "per line) into OUT, a [N, D] .npy. Killed runs resume when started "
                                          "again with the same arguments.")
    p.add_argument("input", metavar="INPUT", help="a text file (one text per line) or a .jsonl/.ndjson file")
    p.add_argument("--out", required=True, metavar="OUT.npy", help="the .npy to write (float32 [N, D])")
    p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                   help="input format (default: auto, JSONL for .jsonl/.ndjson, else text)")
    p.add_argument("--text-field", metavar="NAME", help="JSONL field holding the text (default: text)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="texts per forward pass (default: 32)")
    p.add_argument("--max-batch-tokens", type=int, default=MAX_BATCH_TOKENS, metavar="N",
                   help=f"at most N token positions per forward pass: bounds memory (default: {MAX_BATCH_TOKENS})")
    p.add_argument("--pooling", choices=POOLING_MODES, help="pooling (default: the model directory's, else mean)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="L2-normalize the embeddings (default: the model directory's)")
    p.add_argument("--max-seq-length", type=int, metavar="N", help="truncate texts to N tokens (default: the model's)")
    p.add_argument("--window", type=int, default=WINDOW, metavar="N",
                   help=f"texts sorted together by length: more means less padding, more memory, and more "
                        f"work redone after a kill (default: {WINDOW})")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad lines and list them in OUT.skipped.jsonl instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--restart", action="store_true", help="discard an interrupted run's OUT.partial and start over")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="local processes, each with one thread (default: 1 process using every core)")
    p.add_argument("--dask", metavar="SCHEDULER_ADDRESS", help="embed on a Dask cluster (pip install 'numpybert[dask]')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    from ..apps.corpus import CorpusJob, embed_corpus
    from ..apps.embedder import Embedder, dask_runner, process_runner
    from ..errors import InputValueError
    if args.text_field is not None and args.format == "text":
        raise InputValueError("--text-field applies to JSONL input, not --format text")
    if args.workers < 1 or (args.dask and args.workers != 1):
        raise InputValueError(f"--workers {args.workers}: expected a positive number, and not with --dask")
    embedder = Embedder(args.model, pooling=args.pooling, normalize=args.normalize,
                        max_seq_length=args.max_seq_length, batch_size=args.batch_size, window=args.window,
                        max_batch_tokens=args.max_batch_tokens)
    job = CorpusJob(args.input, args.out, embedder, args.format, args.text_field or "text", args.skip_bad)
    runner = (dask_runner(embedder, args.dask) if args.dask
              else process_runner(embedder, args.workers) if args.workers > 1 else None)
    if runner is None:  # load the weights and tokenizer now: a broken checkpoint is reported before the scan
        embedder.model.tokenizer
    bar = _Progress(enabled=not args.no_progress)
    try:
        result = embed_corpus(job, runner, bar, overwrite=args.overwrite, restart=args.restart)
    except KeyboardInterrupt:
        bar.close()
        where = f"at row {bar.done} of {bar.total}" if bar.total is not None else "while scanning the input"
        print(f"numpybert embed: stopped {where}; run the same command again to resume", file=sys.stderr)
        raise
    bar.close()
    _summary(result, embedder)


class _Progress:
    """The tqdm bar on stderr (texts and texts/s), fed with embed_corpus's (done, total) calls."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.done, self.total = enabled, None, 0, None

    def __call__(self, done: int, total: int):
        if self.enabled:  # the first call: rows already done by an interrupted run
            self.bar, self.enabled, self.done = _tqdm(total, done), False, done
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done, self.total = done, total

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _tqdm(total, initial):
    try:
        from tqdm import tqdm
    except ImportError:
        print("numpybert embed: no progress bar without tqdm (pip install 'numpybert[cli]')", file=sys.stderr)
        return None
    return tqdm(total=total, initial=initial, unit="text", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _summary(result, embedder):
    resumed = f", resumed at row {result.resumed_from}" if result.resumed_from else ""
    empty = f" (the input holds no {'good ' if result.bad else ''}texts)" if result.rows == 0 else ""
    print(f"numpybert embed: wrote {result.out}: {result.rows} x {result.dim} {embedder.dtype}{resumed}{empty}",
          file=sys.stderr)
    if result.bad:
        print(f"numpybert embed: skipped {result.bad} bad line(s), listed in {result.report}", file=sys.stderr)
