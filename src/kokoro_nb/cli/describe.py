"""kokoro-nb describe commands (being moved here from the library modules)."""
import importlib


def register_cli(sub) -> None:
    importlib.import_module("kokoro_nb.describe.stats").register_cli(sub)
    importlib.import_module("kokoro_nb.describe.ledger").register_cli(sub)
