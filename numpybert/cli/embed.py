"""`numpybert embed INPUT --out OUT.{npy,parquet,jsonl}`: embed a file of texts (one per line, or
JSONL, optionally .gz) into a .npy, .parquet or .jsonl.

Streaming, resumable after any kill, never overwriting OUT without --overwrite; see
numpybert/apps/corpus.py for how, and docs/embedding-a-corpus.md for the user's guide.
"""

import argparse
import contextlib
import os
import shutil
import sys
import tempfile

from .. import cli
from ..errors import install_hint
from ..embedder import DASK_TIMEOUT, RAY_TIMEOUT
from ..apps.batching import MAX_BATCH_TOKENS, WINDOW
from ..apps.pooling import POOLING_MODES
from ..apps.long import LONG_MODES


def register(subparsers):
    p = subparsers.add_parser("embed", help="embed a corpus file into .npy, .parquet or .jsonl (resumable)",
                              description="Embed every line of INPUT (text: one text per line; JSONL: one object "
                                          "per line; .gz read as is; Parquet: one row per text) into OUT. Killed runs resume when started "
                                          "again with the same arguments.")
    p.add_argument("input", metavar="INPUT", help="a text file (one text per line), a .jsonl/.ndjson file, either "
                                                  "optionally .gz, a .parquet file, or - for stdin")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="the file to write, format from its extension: .npy (float32 [N, D], no ids), .parquet "
                        "(columns id, embedding; the parquet extra), .jsonl ({\"id\", \"embedding\"} "
                        "per line)")
    p.add_argument("--format", choices=("auto", "text", "jsonl", "parquet"), default="auto",
                   help="input format (default: auto, JSONL for .jsonl/.ndjson[.gz], Parquet for .parquet, else text)")
    p.add_argument("--text-field", metavar="NAME", help="JSONL field or Parquet column holding the text (default: text)")
    p.add_argument("--id-field", metavar="NAME",
                   help="JSONL field or Parquet column holding each text's id (a string or an integer), written "
                        "with its embedding (default: the line or row number, from 1)")
    p.add_argument("--long", choices=LONG_MODES, default="truncate",
                   help="texts over max_seq_length tokens: truncate keeps the first tokens (as sentence-transformers "
                        "does); chunk embeds overlapping windows and takes their token-weighted mean (default: "
                        "truncate; the summary says how many texts were over)")
    p.add_argument("--stride", type=int, metavar="N",
                   help="with --long chunk: tokens shared by consecutive windows (default: an eighth of a window)")
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
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local processes, each with one thread (default: 1 process using every core); with --ray: "
                        "N actors (default: one per CPU of the cluster)")
    p.add_argument("--dask", metavar="SCHEDULER_ADDRESS", help="embed on a Dask cluster (the dask extra)")
    p.add_argument("--dask-timeout", type=float, default=DASK_TIMEOUT, metavar="SECONDS",
                   help=f"give up on an unreachable scheduler after this long (default: {DASK_TIMEOUT:g})")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="embed on a Ray cluster: 'local' starts one on this machine, else auto, HOST:6379 or "
                        "ray://HOST:10001; one actor per CPU, or --workers N actors (the ray extra)")
    p.add_argument("--ray-timeout", type=float, default=RAY_TIMEOUT, metavar="SECONDS",
                   help=f"give up when the Ray actors have not started within this long (default: {RAY_TIMEOUT:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    cli.add_model_argument(p)
    p.set_defaults(run=run)


def run(args):
    from ..apps.corpus import CorpusJob
    from ..embedder import Embedder
    from ..errors import InputValueError
    if args.text_field is not None and args.format == "text":
        raise InputValueError("--text-field applies to JSONL or Parquet input, not --format text")
    if args.workers is not None and (args.workers < 1 or (args.dask and args.workers != 1)):
        raise InputValueError(f"--workers {args.workers}: expected a positive number, and not with --dask")
    if args.dask and args.ray:
        raise InputValueError("--dask and --ray: choose one cluster")
    if args.stride is not None and args.long != "chunk":
        raise InputValueError("--stride applies to --long chunk")
    embedder = Embedder(args.model, pooling=args.pooling, normalize=args.normalize,
                        max_seq_length=args.max_seq_length, batch_size=args.batch_size, window=args.window,
                        long=args.long, stride=args.stride, max_batch_tokens=args.max_batch_tokens)
    with _stdin_as_file(args) as path:
        job = CorpusJob(path, args.out, embedder, args.format, args.text_field or "text", args.skip_bad,
                        args.id_field)
        return _embed(args, job, embedder)


def _embed(args, job, embedder):
    from ..apps.corpus import embed_corpus, read_state
    from ..embedder import dask_runner, process_runner, ray_runner
    runner = (dask_runner(embedder, args.dask, args.dask_timeout) if args.dask
              else ray_runner(embedder, args.ray, args.workers, timeout=args.ray_timeout) if args.ray
              else process_runner(embedder, args.workers) if (args.workers or 1) > 1 else None)
    if runner is None:  # load the weights and tokenizer now: a broken checkpoint is reported before the scan
        embedder.model.tokenizer
    bar = _Progress(enabled=not args.no_progress)
    try:
        result = embed_corpus(job, runner, bar, overwrite=args.overwrite, restart=args.restart)
    except KeyboardInterrupt:
        bar.close()
        state = read_state(job) if bar.total is not None else None
        if state is None:
            where = "before any row was written"
        else:
            pos = state["position"]
            where = (f"with rows 0-{pos['row'] - 1} of {state['rows']} saved; the same command resumes at row "
                     f"{pos['row']} (input line {pos['line'] + 1})" if pos["row"] else
                     f"before the first window of {job.window} rows was saved; the same command starts over")
        print(f"numpybert embed: stopped {where}", file=sys.stderr)
        raise
    bar.close()
    _summary(result, embedder)
    if args.ray and getattr(runner, "stats", None):  # per actor: what it embedded and its busy time
        rates = ", ".join(f"{texts / seconds:.1f}" for texts, seconds in runner.stats.values() if seconds > 0)
        print(f"numpybert embed: {len(runner.stats)} Ray actor(s), texts/s each while busy: {rates}", file=sys.stderr)


@contextlib.contextmanager
def _stdin_as_file(args):
    """INPUT `-`: stdin copied to a temporary file next to OUT (the input is read twice, and a rerun
    with the same stdin resumes: its hash is the same); removed at the end."""
    if args.input != "-":
        yield args.input
        return
    from ..loading.files import check_output_path
    check_output_path(args.out, "--out")
    fd, path = tempfile.mkstemp(prefix=os.path.basename(args.out) + ".stdin-",
                                dir=os.path.dirname(os.path.abspath(args.out)))
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        yield path
    finally:
        os.remove(path)


class _Progress:
    """The tqdm bar on stderr, fed with embed_corpus's (rows, total rows, tokens, total tokens)
    calls. It counts tokens, so the ETA follows the work (the longest texts go first)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar, self.done, self.total, self.tokens = enabled, None, 0, None, 0

    def __call__(self, rows: int, total: int, tokens: int, total_tokens: int):
        if self.enabled:  # the first call: what an interrupted run already did
            self.bar, self.enabled, self.tokens = _tqdm(total_tokens, tokens), False, tokens
        if self.bar is not None:
            self.bar.set_postfix_str(f"{rows}/{total} texts", refresh=False)
            self.bar.update(tokens - self.tokens)
        self.done, self.total, self.tokens = rows, total, tokens

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _tqdm(total, initial):
    try:
        from tqdm import tqdm
    except ImportError:
        print(f"numpybert embed: no progress bar without tqdm ({install_hint('cli')})", file=sys.stderr)
        return None
    return tqdm(total=total, initial=initial, unit="tok", unit_scale=True, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} tokens{postfix} [{elapsed}<{remaining}, {rate_fmt}]")


def _summary(result, embedder):
    resumed = f", resumed at row {result.resumed_from}" if result.resumed_from else ""
    empty = f" (the input holds no {'good ' if result.bad else ''}texts)" if result.rows == 0 else ""
    over = ""
    if result.over:
        over = (f"; {result.over} text(s) over {result.max_seq_length} tokens " +
                ("were cut (--long chunk embeds them whole)" if result.long == "truncate"
                 else "were embedded in overlapping windows (--long chunk)"))
    print(f"numpybert embed: wrote {result.out}: {result.rows} x {result.dim} {embedder.dtype}{resumed}{empty}"
          f"{over}", file=sys.stderr)
    if result.bad:
        print(f"numpybert embed: skipped {result.bad} bad line(s), listed in {result.report}", file=sys.stderr)
