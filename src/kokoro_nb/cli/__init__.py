"""Layer 8, the ``kokoro-nb`` command line: :func:`main` and one module per command group."""
from kokoro_nb.cli.main import build_parser, main, print_json

__all__ = ["build_parser", "main", "print_json"]
