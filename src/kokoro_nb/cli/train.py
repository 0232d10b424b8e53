"""kokoro-nb train commands (being moved here from the library modules)."""
import importlib


def register_cli(sub) -> None:
    importlib.import_module("kokoro_nb.train.sft").register_cli(sub)
    importlib.import_module("kokoro_nb.train.loop").register_cli(sub)
