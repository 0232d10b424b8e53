"""The book's Sphinx extension (``_config.yml`` lists ``kokoro_book.sphinx``): the Colab launch
button opens the committed output-free copy ``notebooks/colab/NN_slug.ipynb`` (Colab cannot open
the MyST sources), a bare ``jupyter-book build .`` stops at once, and two theme fixes.

It runs inside Sphinx only; it neither stages nor renders the book (:mod:`kokoro_book.build`).
"""
from __future__ import annotations

import sys
from pathlib import Path

from sphinx.util import logging

from kokoro_book.colab import COLAB_PATH


def setup(app):
    """Sphinx hook: point the Colab launch button at ``notebooks/colab/<name>.ipynb``."""
    app.add_config_value("kokoro_colab_path", COLAB_PATH, "html")
    app.add_config_value("kokoro_repo_root", "", "html")
    app.connect("html-page-context", _colab_button, priority=502)  # after the theme's (501)
    app.connect("config-inited", _require_pipeline)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("config-inited", _theme_defaults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


NOT_STAGED = ("kokoro-nb: this book renders executed notebooks: run `make book` (or `kokoro-nb "
              "book build`), which executes the chapters with papermill and then renders; "
              "`jupyter-book build .` alone would publish chapters without their numbers")


def _require_pipeline(app, config) -> None:
    """Stop a direct ``jupyter-book build .`` at once: only the staged build has outputs to show."""
    if not config.kokoro_repo_root:       # set by stage_book for every pipeline render
        print(NOT_STAGED, file=sys.stderr)
        raise SystemExit(1)


def _theme_defaults(app, config):
    """Give the theme a colour mode: with none, a first visit logs 'Got invalid theme mode'."""
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "auto")      # follows the reader's system setting
    config.html_context = context


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    """Drop repeated inline scripts: sphinx-thebe adds its config twice, and the second
    ``const THEBE_JS_URL`` is a SyntaxError in the browser console."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:              # same file and attributes, whatever the priority: a repeat
        # an inline script's filename is None or "" depending on who added it
        key = (getattr(js, "filename", js) or "", repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def _colab_button(app, pagename, templatename, context, doctree):
    for group in context.get("header_buttons") or []:
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("text") != "Colab" or "/blob/" not in button.get("url", ""):
                continue
            name = pagename.rsplit("/", 1)[-1]
            rel = app.config.kokoro_colab_path.format(name=name)
            branch = app.config.html_theme_options.get("repository_branch") or "main"
            button["url"] = f"{button['url'].split('/blob/', 1)[0]}/blob/{branch}/{rel}"
            root = app.config.kokoro_repo_root
            if root and not (Path(root) / rel).is_file():
                logging.getLogger(__name__).warning(
                    f"{pagename}: no Colab copy {rel}; run `kokoro-nb book sync-colab`")
