"""kokoro-nb human_eval commands (being moved here from the library modules)."""
import importlib


def register_cli(sub) -> None:
    importlib.import_module("kokoro_nb.evaluate.human_eval").register_cli(sub)
