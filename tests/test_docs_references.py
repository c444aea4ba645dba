"""The documentation points at things that exist: files it names, and README commands whose overrides compose.

Two checks, so that dangling references cannot come back:

* every tracked text file (Python, Markdown, YAML, notebooks, the Makefile, TOML) names only files under
  ``docs/`` that exist, upper-case Markdown documents (``README.md`` and the like) that exist somewhere in the
  repository, and, in Markdown, relative link targets that exist. Lower-case ``.md`` names without a folder
  (``table.md``, ``context_diagnostics.md``) are files that runs write, not documents of the repository, and are
  not checked.
* every ``python -m ochmr_lit.fit|evaluate|predict ...`` command of README.md (fenced code blocks and inline code)
  composes with Hydra as the entry point would compose it, placeholders (``<file.ckpt>``) replaced by dummy values.
  Nothing is run.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig

from ochmr_lit.runner.command_line import CONFIG_MODULE, config_options, pass_trainer_arguments

#: Suffixes (and names) of the text files whose references are checked.
TEXT_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".ipynb", ".toml")
TEXT_NAMES = ("Makefile",)
#: Folders never scanned when the repository's tracked files cannot be listed (no git).
SKIPPED_DIRS = {"outputs", "reproduction", "build", "dist", "node_modules", "__pycache__", "wandb"}

#: A file path under docs/ (``docs/<name>.<ext>``, sub-folders allowed), not part of a longer path.
DOCS_PATH = re.compile(r"(?<![\w./-])docs/(?:[\w-]+/)*[\w-]+\.[A-Za-z0-9]+")
#: An upper-case Markdown document name (``<NAME>.md``), possibly with its folder.
UPPER_MD = re.compile(r"(?<![\w.-])((?:[\w-]+/)*[A-Z][A-Z0-9_-]*\.md)\b")
#: A Markdown link or image target: ``[text](target)`` / ``![alt](target)``.
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")

#: Entry points whose README commands are composed, and their config names.
ENTRY_POINTS = {"fit": "fit", "evaluate": "evaluate", "predict": "predict"}
COMMAND = re.compile(r"python -m ochmr_lit\.(fit|evaluate|predict)\b(.*)")
#: Hydra's own flags that take a value (dropped with it) and that take none (dropped).
HYDRA_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp",
                          "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}
HYDRA_FLAGS = {"--resolve", "--multirun", "-m", "--run", "-r", "--help", "-h", "--hydra-help", "--version"}
#: Config groups: a placeholder there becomes the group's first option instead of a dummy string.
CONFIG_GROUPS = ("experiment", "data", "model", "trainer", "logger", "callbacks", "paths")
PLACEHOLDER = re.compile(r"<[^<>]*>")


def tracked_text_files() -> list[Path]:
    """The repository's tracked text files (:data:`TEXT_SUFFIXES`, :data:`TEXT_NAMES`) that exist on disk."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True,
                                timeout=60).stdout.decode().split("\0")
        paths = [REPO_ROOT / name for name in listed if name]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in REPO_ROOT.rglob("*")
                 if not any(part.startswith(".") or part in SKIPPED_DIRS or part.endswith(".egg-info")
                            for part in p.relative_to(REPO_ROOT).parts)]
    return sorted(p for p in paths if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES))


def repository_names(files: list[Path]) -> set[str]:
    """Base names of the repository's files (any kind), for the upper-case document names."""
    return {p.name for p in files} | {p.name for p in REPO_ROOT.iterdir() if p.is_file()}


def dangling_references(path: Path, text: str, names: set[str]) -> list[str]:
    """The file references of ``text`` (the contents of ``path``) that do not exist in the repository."""
    missing = [m.group(0) for m in DOCS_PATH.finditer(text) if not (REPO_ROOT / m.group(0)).exists()]
    for m in UPPER_MD.finditer(text):
        ref = m.group(1)
        if not ((REPO_ROOT / ref).exists() or (path.parent / ref).exists() or ("/" not in ref and ref in names)):
            missing.append(ref)
    if path.suffix == ".md":
        for m in MD_LINK.finditer(text):
            target = m.group(1).split("#", 1)[0]
            if target and "://" not in target and not target.startswith("mailto:") \
                    and not (path.parent / target).exists():
                missing.append(target)
    return missing


def test_no_text_file_names_a_missing_doc_or_markdown_file():
    files = tracked_text_files()
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".py" for p in files)
    names = repository_names(files)
    problems = [f"{p.relative_to(REPO_ROOT)}: {ref}" for p in files
                for ref in dangling_references(p, p.read_text(encoding="utf-8", errors="replace"), names)]
    assert not problems, "references to files that are not in the repository:\n" + "\n".join(problems)


def test_the_reference_check_catches_missing_files():
    names = {"README.md"}
    readme = REPO_ROOT / "README.md"
    missing_doc, missing_upper = "docs/" + "no_such_page.md", "NO_SUCH_DOC" + ".md"
    text = f"see {missing_doc}, {missing_upper} section 5, [x]({'nowhere' + '.png'}), README.md, docs/architecture.md"
    assert dangling_references(readme, text, names) == [missing_doc, missing_upper, "nowhere.png"]
    assert dangling_references(REPO_ROOT / "a.py", "outputs/x/results/table.md, docs.rs", names) == []


# -- README commands -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadmeCommand:
    """One ``python -m ochmr_lit.<entry> ...`` command of README.md."""

    line: int
    entry: str
    text: str


def _code_lines(readme: str) -> list[tuple[int, str]]:
    """(line number, text) of the shell lines of fenced code blocks, continuation lines (``\\``) joined."""
    out: list[tuple[int, str]] = []
    in_block, pending, start = False, "", 0
    for number, line in enumerate(readme.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        start = start if pending else number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def _inline_spans(readme: str) -> list[tuple[int, str]]:
    """(line number, text) of the inline code spans outside fenced blocks (a span may wrap onto the next line)."""
    prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), readme, flags=re.S)
    return [(prose.count("\n", 0, m.start()) + 1, m.group(1).replace("\n", " "))
            for m in re.finditer(r"`([^`]+)`", prose)]


def readme_commands(readme: str) -> list[ReadmeCommand]:
    """Every fit / evaluate / predict command of README.md, in order of appearance (code blocks, then inline)."""
    commands = []
    for number, text in _code_lines(readme) + _inline_spans(readme):
        match = COMMAND.search(text)
        if match:
            commands.append(ReadmeCommand(number, match.group(1), match.group(0)))
    return commands


def _placeholder_value(key: str, value: str) -> str:
    """``value`` with its placeholders replaced: a config group's first option, else ``dummy``."""
    if not PLACEHOLDER.search(value):
        return value
    group = key.lstrip("+~")
    if group in CONFIG_GROUPS:
        return config_options(group)[0]
    return PLACEHOLDER.sub("dummy", value)


def command_overrides(command: str) -> list[str]:
    """The Hydra overrides of a README command, as its entry point passes them to Hydra.

    Shell comments and pipes end the command, ``...`` is dropped, optional ``[key=value]`` parts are kept,
    Hydra's own flags are dropped and placeholders get dummy values (:func:`_placeholder_value`).
    """
    tokens = shlex.split(COMMAND.match(command).group(2), comments=True)
    overrides: list[str] = []
    skip_value = False
    for token in tokens:
        if skip_value:
            skip_value = False
            continue
        if token in ("|", "||", "&&", ";", ">"):
            break
        if token in HYDRA_FLAGS_WITH_VALUE:
            skip_value = True
            continue
        if token in HYDRA_FLAGS or token == "...":
            continue
        if token.startswith("[") and token.endswith("]") and "=" in token:
            token = token[1:-1]
        key, sep, value = token.partition("=")
        assert sep, f"not a Hydra override: {token!r} in {command!r}"
        overrides.append(f"{key}={_placeholder_value(key, value)}")
    return pass_trainer_arguments(overrides)


def compose_command(command: ReadmeCommand) -> DictConfig:
    """The config a README command composes to (raises what Hydra raises)."""
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name=ENTRY_POINTS[command.entry], overrides=command_overrides(command.text))


README_COMMANDS = readme_commands((REPO_ROOT / "README.md").read_text(encoding="utf-8"))


def test_readme_commands_are_found():
    entries = {c.entry for c in README_COMMANDS}
    assert entries == set(ENTRY_POINTS), entries
    assert any("data.det_files" in c.text for c in README_COMMANDS)


@pytest.mark.parametrize("command", README_COMMANDS, ids=[f"README.md:{c.line}" for c in README_COMMANDS])
def test_readme_command_composes(command):
    try:
        compose_command(command)
    except Exception as error:  # any composition error is the README's: name the command and Hydra's reason
        pytest.fail(f"README.md line {command.line}: {command.text!r} does not compose: "
                    f"{type(error).__name__}: {error}")


def test_readme_detection_commands_give_the_data_module_its_detections():
    detection = [c for c in README_COMMANDS if "data.det_files" in c.text]
    assert detection
    for command in detection:
        cfg = compose_command(command)
        datamodule = instantiate(cfg.data, _convert_="all")
        assert {k: v.name for k, v in datamodule.det_files.items()} == {"test": "dummy"}, command.text
        assert datamodule.det_score_threshold == 0.5, command.text


def test_a_command_that_does_not_compose_is_caught():
    bad = ReadmeCommand(0, "evaluate", "python -m ochmr_lit.evaluate experiment=ochmr_r50 data=coco "
                                       "ckpt_path=<file.ckpt> det_files=<detections.json> det_score_threshold=0.5")
    assert command_overrides(bad.text)[:3] == ["experiment=ochmr_r50", "data=coco", "ckpt_path=dummy"]
    with pytest.raises(Exception, match="det_files"):
        compose_command(bad)
