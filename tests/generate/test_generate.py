"""Greedy generation of the test turns: prompts, JSONL format, resume, tiny model on CPU."""
from __future__ import annotations


from pathlib import Path

import pandas as pd
import pytest

import kokoro_nb
from kokoro_nb import config, generate
from kokoro_nb.errors import DataError
from kokoro_nb.data import splits
from kokoro_nb.train import models, sft


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from kokoro_nb.testing.synthetic import write_kokorochat
    root = write_kokorochat(tmp_path_factory.mktemp("gen") / "k", n_dialogues=6)
    return kokoro_nb.load_kokorochat(root, cache=False, progress=False)


@pytest.fixture(scope="module")
def tiny(corpus, tmp_path_factory):
    # unquantised here for speed; the 4-bit path is exercised by tests/train/test_train.py and the notebooks
    return generate.load_generator(config.TINY_MODEL, corpus=corpus, work_dir=tmp_path_factory.mktemp("tiny"),
                                   load_in_4bit=False)


def test_prompts_are_the_baseline_turns_with_full_history(corpus):
    ids = [str(i) for i in corpus.dialogues["dialogue_id"][:2]]
    prompts = generate.response_prompts(corpus, ids)
    want = splits.response_turns(corpus, ids)
    assert [(p["dialogue_id"], p["turn"], p["reference"]) for p in prompts] == \
        list(zip(want["dialogue_id"], want["turn"].astype(int), want["reference"]))
    turns = sft.dialogue_turns(corpus, ids)
    for p in prompts:
        assert p["messages"][1:] == sft.to_messages(turns[p["dialogue_id"]][:p["turn"]], None)
        assert p["messages"][-1]["content"] == turns[p["dialogue_id"]][p["turn"] - 1][1]


def _keys(path):
    return [(r["dialogue_id"], r["turn"]) for r in generate.read_responses(path)]


def test_generates_every_turn_greedily_and_resumes(corpus, tiny, tmp_path):
    model, tok = tiny
    prompts = generate.response_prompts(corpus, [str(i) for i in corpus.dialogues["dialogue_id"][:2]])[-14:]
    full = tmp_path / "full.jsonl"
    info = generate.generate_responses(model, tok, prompts, full, batch_size=8, max_new_tokens=8,
                                       max_length=256, progress=False)
    assert info["written"] == len(prompts) == info["total"] and info["shortened"] > 0
    rows = generate.read_responses(full)
    assert all(set(r) == set(generate.RESPONSE_FIELDS) and isinstance(r["hypothesis"], str) for r in rows)
    assert sorted(_keys(full)) == sorted((p["dialogue_id"], p["turn"]) for p in prompts)

    # interrupted: the first 5 records and half a line are on disk
    part = tmp_path / "part.jsonl"
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    part.write_text("".join(lines[:5]) + lines[5][:10], encoding="utf-8")
    again = generate.generate_responses(model, tok, prompts, part, batch_size=3, max_new_tokens=8,
                                        max_length=256, progress=False)
    assert again["skipped"] == 5 and again["written"] == len(prompts) - 5
    assert sorted(_keys(part)) == sorted(_keys(full)) and len(_keys(part)) == len(prompts)
    by_key = lambda p: {(r["dialogue_id"], r["turn"]): r["hypothesis"] for r in generate.read_responses(p)}
    assert by_key(part) == by_key(full)                 # greedy: the same text whatever the batching
    done = generate.generate_responses(model, tok, prompts, part, max_new_tokens=8, progress=False)
    assert done["written"] == 0 and done["skipped"] == len(prompts)


def test_bad_line_in_the_middle_is_an_error(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"dialogue_id": "1", "turn": 1}\nnot json\n{"dialogue_id": "1", "turn": 3}\n', encoding="utf-8")
    with pytest.raises(DataError, match="r.jsonl:2"):
        generate.done_keys(p)


def test_adapter_folder_is_checked(tmp_path):
    with pytest.raises(DataError, match="adapter_config.json"):
        generate.load_generator(adapter=tmp_path)


def test_tiny_model_needs_the_corpus():
    with pytest.raises(DataError, match="corpus"):
        generate.load_generator(config.TINY_MODEL)


def test_score_predictions_keep_raw_output_and_count_failures(corpus, tiny, tmp_path):
    model, tok = tiny
    examples = sft.score_examples(corpus, [str(i) for i in corpus.dialogues["dialogue_id"][:3]])
    out = tmp_path / "scores.jsonl"
    info = generate.generate_scores(model, tok, examples, out, max_new_tokens=6, max_length=1100, progress=False)
    rows = generate.read_responses(out)
    assert info["written"] == 3 and sum(info["parsed"].values()) == 3
    for r, e in zip(sorted(rows, key=lambda r: r["dialogue_id"]), sorted(examples, key=lambda e: e["dialogue_id"])):
        assert r["gold"] == e["gold"] and len(r["pred"]) == 20
        assert r["pred"] == sft.parse_scores(r["output"]).values
    from kokoro_nb.evaluate import results
    assert results.find_results(tmp_path)["scores"] == [out]        # the evaluation chapter finds it


def test_evaluation_ids_are_the_response_test_split(corpus):
    assert generate.evaluation_dialogue_ids(corpus) == [str(i) for i in splits.response_splits(corpus.dialogues)["test"]]
    low = generate.evaluation_dialogue_ids(corpus, min_score=60)
    assert generate.evaluation_dialogue_ids(corpus, 2, min_score=60) == low[:2]


# --------------------------------------------------------------------------- backends and released models

def test_both_backends_decode_the_same_prompts_greedily(corpus, tiny):
    """HF generate and vLLM get the same prompt ids, the same stop ids, budget and greedy decoding."""
    _, tok = tiny
    prompts = generate.response_prompts(corpus, [str(corpus.dialogues["dialogue_id"].iloc[0])])[:5]
    ids = generate.encode_prompts(prompts, tok)
    for p, i in zip(prompts, ids):
        assert i == sft.prompt_ids(p["messages"], tok)
        assert tok.decode(i).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    s = generate.greedy_settings(tok, 32)
    hf, vl = generate.hf_generate_kwargs(s, tok), generate.vllm_sampling_kwargs(s)
    assert hf["do_sample"] is False and vl["temperature"] == 0.0
    assert hf["max_new_tokens"] == vl["max_tokens"] == 32
    assert hf["eos_token_id"] == vl["stop_token_ids"] == [tok.convert_tokens_to_ids("<|eot_id|>"),
                                                          tok.convert_tokens_to_ids("<|end_of_text|>")]


def test_vllm_backend_without_vllm_names_the_install(corpus, monkeypatch, tmp_path):
    import importlib.util
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    from kokoro_nb.errors import MissingDependencyError
    with pytest.raises(MissingDependencyError, match="requirements-vllm.txt"):
        generate.load_generator(config.TINY_MODEL, corpus=corpus, work_dir=tmp_path, load_in_4bit=False,
                                backend="vllm")
    assert not generate.vllm_available()


@pytest.fixture(scope="module")
def released_like(corpus, tiny, tmp_path_factory):
    """Local stand-ins for the two ways a fine-tuned model is published: full weights and a LoRA adapter."""
    from peft import LoraConfig, get_peft_model
    root = tmp_path_factory.mktemp("released")
    base = models.build_tiny_llama(models.tiny_tokenizer_texts(corpus), root / "base")
    model, tok = models.load_base_model(str(base), load_in_4bit=False)[0], models.load_tokenizer(str(base))
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM", init_lora_weights=False))
    peft.save_pretrained(root / "adapter")
    tok.save_pretrained(root / "adapter")
    peft.merge_and_unload().save_pretrained(root / "full")
    tok.save_pretrained(root / "full")
    return root


def test_adapter_or_full_weights_are_told_apart(released_like):
    assert generate.is_adapter(released_like / "adapter") and not generate.is_adapter(released_like / "full")
    assert generate.adapter_base(released_like / "adapter") == str(released_like / "base")
    with pytest.raises(DataError, match="adapter"):
        generate.adapter_base(released_like / "full")


def test_released_model_loads_either_way_and_gives_the_same_text(corpus, released_like, tmp_path):
    """model_name = an adapter folder or merged full weights: both load, and decode identically."""
    from peft import PeftModel
    prompts = generate.response_prompts(corpus, [str(corpus.dialogues["dialogue_id"].iloc[0])])[:3]
    out = {}
    for kind in ("adapter", "full"):
        model, tok = generate.load_generator(str(released_like / kind), load_in_4bit=False, progress=False)
        assert isinstance(model, PeftModel) == (kind == "adapter")
        generate.generate_responses(model, tok, prompts, tmp_path / f"{kind}.jsonl", max_new_tokens=6,
                                    max_length=None, progress=False)
        out[kind] = [r["hypothesis"] for r in generate.read_responses(tmp_path / f"{kind}.jsonl")]
    assert out["adapter"] == out["full"] and any(out["full"])


def test_released_model_ids_are_configured():
    assert set(config.RELEASED_MODELS) == set(splits.SUBSETS)
    assert all(v.startswith("UEC-InabaLab/KokoroChat-") for v in config.RELEASED_MODELS.values())


def test_reference_english_is_joined_by_turn_and_missing_english_is_said(tmp_path):
    from kokoro_nb.testing.synthetic import write_kokorochat, write_translation
    ja = write_kokorochat(tmp_path / "ja", n_dialogues=4)
    c = kokoro_nb.load_kokorochat(ja, cache=False, progress=False)
    c = c.with_english(write_translation(tmp_path / "en", ja, missing=("2",)))
    turns = c.turns()
    rows = pd.DataFrame(generate.response_prompts(c)).assign(hypothesis="x")
    shown = generate.with_reference_english(rows, turns[["dialogue_id", "turn", "text_en"]], max_chars=10_000)
    ref_en = shown["reference (English, Multilingual KokoroChat)"]
    expected = rows.merge(turns, on=["dialogue_id", "turn"])["text_en"]
    missing = rows["dialogue_id"].astype(str) == "2"
    assert missing.any() and (~missing).any()
    assert (ref_en[missing] == generate.NO_ENGLISH).all()
    assert ref_en[~missing].tolist() == expected[~missing].tolist()
    assert shown["reference (Japanese)"].tolist() == rows["reference"].tolist()
    short = generate.with_reference_english(rows.head(1), turns, max_chars=3, lang="ja")
    assert short.columns[2] == "参照（日本語）" and short.iloc[0, 2] == rows["reference"].iloc[0][:3] + "…"


# --------------------------------------------------------------------------- vLLM (mocked: no GPU here)

class FakeLLM:
    """Stands for ``vllm.LLM``: records its keyword arguments and every ``generate`` call."""
    instances: list = []
    fail_on_call: int | None = None

    def __init__(self, **kw):
        self.kw, self.calls = kw, []
        FakeLLM.instances.append(self)

    def generate(self, prompts, params, *, lora_request=None, use_tqdm=True):
        from types import SimpleNamespace as NS
        self.calls.append({"prompts": [p["prompt_token_ids"] for p in prompts], "params": params,
                           "lora_request": lora_request})
        if FakeLLM.fail_on_call == len(self.calls):
            raise RuntimeError("CUDA out of memory (simulated)")
        # 3 ids each, beyond the tiny vocabulary: counted as ids, never re-tokenized
        return [NS(outputs=[NS(text=f" n{len(p['prompt_token_ids'])} ", token_ids=[5000, 5001, 5002])])
                for p in prompts]


@pytest.fixture
def fake_vllm(monkeypatch):
    import importlib.machinery
    import sys
    import types
    FakeLLM.instances, FakeLLM.fail_on_call = [], None
    mods = {}
    for name in ("vllm", "vllm.lora", "vllm.lora.request"):
        m = types.ModuleType(name)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        mods[name] = m
        monkeypatch.setitem(sys.modules, name, m)
    mods["vllm"].LLM = FakeLLM
    mods["vllm"].SamplingParams = lambda **kw: kw
    mods["vllm.lora.request"].LoRARequest = lambda name, id_, path: {"name": name, "id": id_, "path": path}
    return FakeLLM


def _adapter(base_dir, out, r):
    from peft import LoraConfig, get_peft_model
    model, tok = models.load_base_model(str(base_dir), load_in_4bit=False)[0], models.load_tokenizer(str(base_dir))
    get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"],
                                     task_type="CAUSAL_LM")).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("r, allowed", [(1, 1), (2, 8), (8, 8), (12, 16), (64, 64), (100, 128), (300, 320),
                                         (512, 512)])
def test_lora_rank_is_rounded_up_to_one_vllm_accepts(r, allowed):
    assert generate.vllm_lora_rank(r) == allowed and allowed in generate.VLLM_LORA_RANKS


def test_lora_rank_above_vllms_largest_is_an_error():
    with pytest.raises(DataError, match="backend='hf'"):
        generate.vllm_lora_rank(513)


def test_vllm_loads_bf16_with_the_adapter_as_lora_never_bitsandbytes(released_like, fake_vllm, tmp_path):
    adapter = _adapter(released_like / "base", tmp_path / "r12", r=12)
    model, tok = generate.load_generator(str(adapter), backend="vllm", load_in_4bit=True, max_length=2048,
                                         progress=False)
    kw = fake_vllm.instances[-1].kw
    assert "quantization" not in kw and kw["dtype"] == "bfloat16"
    assert kw["enable_lora"] is True and kw["max_lora_rank"] == 16 and kw["max_loras"] == 1
    assert kw["model"] == str(released_like / "base") and kw["max_model_len"] == 2048
    assert model.lora_request == {"name": "adapter", "id": 1, "path": str(adapter)}
    # full weights: no LoRA at all
    generate.load_generator(str(released_like / "full"), backend="vllm", progress=False)
    assert not any(k in fake_vllm.instances[-1].kw for k in ("quantization", "enable_lora", "max_lora_rank"))


def test_vllm_gets_large_chunks_fsynced_and_resumes(corpus, tiny, fake_vllm, tmp_path, monkeypatch):
    _, tok = tiny
    prompts = generate.response_prompts(corpus, [str(i) for i in corpus.dialogues["dialogue_id"][:2]])[:14]
    llm = FakeLLM()
    model = generate.VllmModel(llm, lora_request="LORA")
    out = tmp_path / "r.jsonl"
    info = generate.generate_responses(model, tok, prompts, out, batch_size=8, max_new_tokens=8, max_length=None,
                                       progress=False)
    assert [len(c["prompts"]) for c in llm.calls] == [14]          # one call, not batches of 8
    assert sorted(llm.calls[0]["prompts"]) == sorted(generate.encode_prompts(prompts, tok))
    assert llm.calls[0]["lora_request"] == "LORA" and llm.calls[0]["params"]["temperature"] == 0.0
    assert info["written"] == 14 and info["new_tokens"] == 14 * 3
    assert {r["hypothesis"] for r in generate.read_responses(out)} <= {f"n{len(i)}" for i in llm.calls[0]["prompts"]}

    # chunks of 5: the second chunk fails, the first is on disk; a rerun sends only what is missing
    monkeypatch.setattr(generate.VllmModel, "chunk_size", 5)
    fsyncs = []
    real_fsync = generate.os.fsync
    monkeypatch.setattr(generate.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd)))
    llm2, part = FakeLLM(), tmp_path / "part.jsonl"
    FakeLLM.fail_on_call = 2
    with pytest.raises(RuntimeError, match="simulated"):
        generate.generate_responses(generate.VllmModel(llm2), tok, prompts, part, batch_size=2, max_new_tokens=8,
                                    max_length=None, progress=False)
    assert len(generate.read_responses(part)) == 5 and len(fsyncs) == 1
    FakeLLM.fail_on_call = None
    llm3 = FakeLLM()
    again = generate.generate_responses(generate.VllmModel(llm3), tok, prompts, part, batch_size=2,
                                        max_new_tokens=8, max_length=None, progress=False)
    assert [len(c["prompts"]) for c in llm3.calls] == [5, 4] and again["skipped"] == 5
    assert sorted(_keys(part)) == sorted(_keys(out))


GPUS = {"T4": 14.6, "L4": 22.0, "A100-40GB": 39.4, "A100-80GB": 79.2, "H100": 79.1}


@pytest.mark.parametrize("name, gb", GPUS.items())
def test_auto_picks_vllm_only_where_bf16_weights_fit(name, gb):
    dev = {"device": "cuda", "name": name, "memory_gb": gb, "bf16": name != "T4"}
    backend, why = generate.choose_backend(dev, installed=True)
    assert backend == ("vllm" if gb >= generate.VLLM_MIN_GPU_GB else "hf")
    assert "\n" not in why and name in why and f"{gb:.0f} GiB" in why
    assert ("4-bit" in why) == (backend == "hf")


def test_auto_without_vllm_or_gpu_is_hf_and_says_why():
    a100 = {"device": "cuda", "name": "A100", "memory_gb": 79.0}
    assert generate.choose_backend(a100, installed=False) == ("hf", "hf (Hugging Face generate): vLLM is not installed")
    backend, why = generate.choose_backend({"device": "cpu", "name": "cpu"}, installed=True)
    assert backend == "hf" and "no" in why and "GPU" in why


def test_auto_prints_its_choice_and_loads_that_backend(released_like, fake_vllm, monkeypatch, capsys):
    monkeypatch.setattr(models, "runtime_device", lambda: {"device": "cuda", "name": "NVIDIA H100", "memory_gb": 79.1})
    model, _ = generate.load_generator(str(released_like / "adapter"), backend="auto", progress=False)
    assert isinstance(model, generate.VllmModel)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("backend auto:")]
    assert lines == ["backend auto: " + generate.choose_backend(models.runtime_device(), installed=True)[1]]
    monkeypatch.setattr(models, "runtime_device", lambda: {"device": "cuda", "name": "Tesla T4", "memory_gb": 14.6})
    monkeypatch.setattr(models, "load_base_model", lambda *a, **k: (_Stub(), []))
    model, _ = generate.load_generator(str(released_like / "full"), backend="auto", progress=False)
    assert isinstance(model, _Stub) and "Tesla T4 has 15 GiB" in capsys.readouterr().out


class _Stub:
    """Stands for a 4-bit HF model (bitsandbytes needs CUDA)."""
    def eval(self):
        return self


# --------------------------------------------------------------------------- the vLLM environment's lock

ROOT = Path(__file__).resolve().parents[2]
LINUX_312 = {"python_version": "3.12", "python_full_version": "3.12.8", "sys_platform": "linux",
             "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
             "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def _pins(path, env=LINUX_312) -> dict:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    pins = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate(env):
            (spec,) = r.specifier
            assert spec.operator == "==", f"{path.name}:{no} is not pinned"
            pins[canonicalize_name(r.name)] = spec.version
    return pins


def test_vllm_lock_pins_everything_the_package_asks_for():
    """requirements-vllm.txt satisfies the package's own ranges (transformers floor included) on Python 3.12."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    pins = _pins(ROOT / "requirements-vllm.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["train"] + \
        project["optional-dependencies"]["vllm"]
    for req in map(Requirement, wanted):
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not in requirements-vllm.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {req}"
    assert pins["torch"] == _pins(ROOT / "requirements-torch.txt")["torch"]     # the torch the package is tested on
    assert "make lock-vllm" in (ROOT / "requirements-vllm.txt").read_text(encoding="utf-8")


def _uv():
    import shutil
    import sys
    for cand in (shutil.which("uv"), Path(sys.prefix) / "bin" / "uv"):
        if cand and Path(cand).exists():
            return str(cand)
    pytest.skip("uv is not installed (make lock installs it)")


@pytest.mark.slow
def test_vllm_lock_resolves_as_it_is(tmp_path):
    """uv resolves requirements-vllm.txt with every dependency (vLLM's own Requires-Dist included) to itself.

    From uv's cache when it holds the metadata, from PyPI otherwise; skipped when neither is reachable.
    """
    import subprocess
    cmd = [_uv(), "pip", "compile", str(ROOT / "requirements-vllm.txt"), "--universal", "--python-version", "3.12",
           "--no-header", "--no-annotate", "--quiet", "-c", str(ROOT / "requirements-torch.txt")]
    run = subprocess.run(cmd + ["--offline"], capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if run.returncode != 0 and any(w in run.stderr.lower() for w in ("dns error", "connect", "network")):
            pytest.skip("PyPI is not reachable and uv's cache lacks the metadata")
    assert run.returncode == 0, run.stderr[-2000:]
    resolved = tmp_path / "resolved.txt"
    resolved.write_text(run.stdout, encoding="utf-8")
    assert _pins(resolved) == _pins(ROOT / "requirements-vllm.txt")
