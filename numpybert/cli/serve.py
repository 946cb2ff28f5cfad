"""`numpybert serve`: the embedding server (OpenAI /v1/embeddings, text-embeddings-inference
/embed ...); the code is numpybert/serve/, the guide docs/serving.md. Needs the `serve` extra."""

import os


def register(subparsers):
    p = subparsers.add_parser("serve", help="an embedding server: OpenAI /v1/embeddings and TEI /embed, /rerank",
                              description="Serve the model over HTTP: OpenAI's POST /v1/embeddings and "
                                          "text-embeddings-inference's /embed, /embed_all, /tokenize, /predict, "
                                          "/rerank, /health, /info, /metrics, with dynamic batching "
                                          "(needs the serve extra: pip install -e '.[serve]' in a checkout, "
                                          "or pip install 'numpybert-*.whl[serve]'; docs/serving.md).")
    from . import add_model_argument
    add_model_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--served-model-name", metavar="NAME",
                   help="the model's name in /v1/models and the answers (default: the model directory's name)")
    p.add_argument("--max-batch-tokens", type=int, default=16384, metavar="N",
                   help="real tokens per batch the compute thread runs (default 16384)")
    p.add_argument("--max-concurrent-requests", type=int, default=512, metavar="N",
                   help="requests admitted at once; more get 429 with Retry-After (default 512)")
    p.add_argument("--max-client-batch-size", type=int, default=2048, metavar="N",
                   help="inputs per request; more get 413 (default 2048, OpenAI's limit)")
    p.add_argument("--max-input-length", type=int, default=None, metavar="TOKENS",
                   help="tokens per input, [CLS]/[SEP] included (default: the model's max_seq_length, "
                        "256 for all-MiniLM-L6-v2); longer ones are cut, or refused with 413 when "
                        "the request says truncate: false")
    p.add_argument("--payload-limit", type=int, default=2_000_000, metavar="BYTES",
                   help="largest request body; larger get 413 (default 2000000, as TEI)")
    p.add_argument("--api-key", default=os.environ.get("NUMPYBERT_API_KEY"), metavar="KEY",
                   help="require 'Authorization: Bearer KEY' (default: $NUMPYBERT_API_KEY, else none)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of a forward (default: numpybert's choice, every core it may use; "
                        "1 on a machine shared with other busy processes)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes serving the one port, each with its own batcher (default 1); the weights "
                        "are memory-mapped (--mmap implied), so the page cache holds one copy for all")
    p.add_argument("--mmap", action="store_true", help="map the weights instead of copying them (smaller, "
                                                       "faster start; the file must not change while serving)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default warning)")
    p.set_defaults(run=run)


def run(args):
    from ..errors import InputValueError
    for name in ("threads", "port", "workers", "max_batch_tokens", "max_concurrent_requests", "max_client_batch_size", "payload_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")
    from ..serve import Options, serve  # the serve extra: a one-line error when it is missing
    name = args.served_model_name or os.path.basename(os.path.normpath(str(args.model)))
    options = Options(model=str(args.model), name=name, max_batch_tokens=args.max_batch_tokens,
                      max_concurrent_requests=args.max_concurrent_requests,
                      max_client_batch_size=args.max_client_batch_size, max_input_length=args.max_input_length,
                      payload_limit=args.payload_limit, api_key=args.api_key, mmap=args.mmap,
                      threads=args.threads, workers=args.workers)
    return serve(options, args.host, args.port, args.log_level)
