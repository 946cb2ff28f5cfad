"""One module per `numpybert` subcommand; each defines `register(subparsers)`."""
