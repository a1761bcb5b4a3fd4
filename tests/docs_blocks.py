"""The fenced code blocks of README.md and docs/ (our own collector: a few dozen lines, no
plugin to pin, and it knows this project's commands), and how each kind is executed:

- `python`: run as a script in a fresh interpreter; a run path in it (a "runs/..." string
  literal or the placeholder DIR) is replaced by a small trained run.
- `bash`: every command is run in the form that computes nothing: an app's command line is
  composed and checked exactly as the app does before Hydra starts (`cli.check_command_line`:
  every key, value, preset and sweep job; bad input fails the test with the app's one line),
  `make T` as `make -n T`, `pytest ARGS` as a collection of ARGS, `pip install .[extra]` as a
  check that the extra exists, `python SCRIPT.py` as a compile of a script that exists. A
  training command runs for hours at paper scale; its check finds what breaks silently.
- `toml`: parsed, and an entry-point group in it must be the one plugins.py reads.
- `text`: output shown to the reader, not code. An unlabelled block fails the test, so every
  block is either executed or declared output.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)
LANGUAGES = ("python", "bash", "toml", "text")
APPS = {"icl-train": "icl_regression.train.app", "icl-eval": "icl_regression.evaluate.app",
        "icl-probe": "icl_regression.probes.app", "icl-figures": "icl_regression.figures.app",
        "icl-experiments": "icl_regression.experiments.app",
        "icl-lsa": "icl_regression.analysis.app", "icl-reproduce": "icl_regression.reproduce.app"}
MODULE_APPS = {"icl_regression.train": "icl-train", "icl_regression.evaluate": "icl-eval",
               "icl_regression.probes": "icl-probe", "icl_regression.figures": "icl-figures",
               "icl_regression.experiments": "icl-experiments",
               "icl_regression.reproduce": "icl-reproduce"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    language: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks() -> list[Block]:
    out = []
    for path in doc_files():
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            out.append(Block(path, line, match.group(1), match.group(2)))
    return out


def commands(script: str) -> list[list[str]]:
    """A bash block's commands: continuations joined, comments and env assignments dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            words = words[1:]  # CUDA_VISIBLE_DEVICES=0 icl-train ...
        if words:
            out.append(words)
    return out


def with_run(words: list[str], run_dir: str) -> list[str]:
    """Placeholders for a trained run (DIR, RUN, runs/.../<date_time>) -> `run_dir`."""
    out = []
    for word in words:
        word = re.sub(r"<[a-z_]+>", "2026-01-01_00-00-00", word) if "run_dir=" not in word \
            else word  # a date placeholder in a path: any date
        key, eq, value = word.partition("=")
        value = value.strip("'\"")  # "run_dir='$d'": Hydra's quotes
        if eq and key in ("run_dir", "control_run_dir") and (
                "<" in value or value in ("DIR", "RUN", "FIXED_W_DIR", "0") or value.startswith(
                    ("runs/", "$"))):
            word = f"{key}={run_dir}"
        out.append(word)
    return out


def python_with_run(code: str, run_dir: str) -> str:
    code = re.sub(r"([\"'])runs/[^\"']*\1", repr(run_dir), code)
    return re.sub(r"\bDIR\b", repr(run_dir), code)


SHELL_ONLY = {"export", "echo", "kill", "wait", "ls", "sleep", ":", "cd", "git", "sort", "tail",
              "grep", "mkdir", "rm", "cat", "done", "fi"}


def project_commands(script: str) -> list[list[str]]:
    """The project's commands of a bash block, shell variables expanded (a loop variable takes
    the loop's first value, `$(...)` a number) and shell-only commands dropped."""
    values: dict[str, str] = {}
    out = []
    text = re.sub(r"\$\(\(.*?\)\)|\$\([^)]*\)", "1", re.sub(r"\\\n\s*", " ", script))
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        part: list[str] = []
        for word in [*lexer, ";"]:
            if word in (";", "&&", "||", "|", "&"):
                out.extend(_command(part, values))
                part = []
            elif re.fullmatch(r"\$\{?\w+\}?", word):  # a bare $VAR: split into words
                part.extend(values.get(word.strip("${}"), "0").split())
            else:
                part.append(re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m[1], "0"), word))
    return out


def _command(words: list[str], values: dict[str, str]) -> list[list[str]]:
    if words[:1] == ["export"]:
        words = words[1:]
    if words and words[0] == "for" and len(words) >= 4:
        values[words[1]] = words[3]  # for NAME in FIRST ...: NAME is FIRST
        return []
    while words and words[0] in ("do", "then"):
        words = words[1:]
    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        if not words:
            values[name] = value
    return [] if not words or words[0] in SHELL_ONLY else [words]
