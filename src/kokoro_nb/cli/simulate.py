"""kokoro-nb simulate commands (being moved here from the library modules)."""
import importlib


def register_cli(sub) -> None:
    importlib.import_module("kokoro_nb.evaluate.simulate").register_cli(sub)
