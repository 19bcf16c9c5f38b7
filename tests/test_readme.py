"""The README's code blocks work: every `zoo` command line parses, every tuning script it names
exists, and its ```python blocks run top to bottom, in order, in one fresh process (as a reader
would paste them), with the data they name where ../shared/data has it. (A ```py block is a
sketch with placeholders, such as the template of a new entry, and is not run.)"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SHARED = ROOT / ".." / "shared" / "data"
# File names the README's Python blocks read, and where the shared data has them.
DATA = {"usc_had.h5": SHARED / "har" / "usc_had.h5"}


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def command_lines():
    """Each `zoo ...` and `python tuning/...` command of the README's bash blocks, as words."""
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            for command in re.split(r"&&|;", line):
                try:
                    words = shlex.split(command.rstrip("& "))
                except ValueError:  # a quoted value continued on the next line (TF_CONFIG=')
                    assert " zoo " not in f" {command} ", f"unparsable README line: {line}"
                    continue
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
                    words = words[1:]
                if words and (Path(words[0]).name == "zoo" or words[1:3] == ["-m", "zoo"]):
                    yield words
                elif len(words) > 1 and words[0] == "python" and words[1].startswith("tuning/"):
                    yield words


COMMANDS = list(command_lines())


def test_the_readme_shows_commands_and_python():
    assert len(COMMANDS) >= 10 and len(blocks("python")) >= 3


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w)[:60] for w in COMMANDS])
def test_every_readme_command_parses(words):
    if words[0] == "python" and words[1].startswith("tuning/"):
        assert (ROOT / words[1]).is_file(), f"the README names {words[1]}, which does not exist"
        name = words[2] if len(words) > 2 and not words[2].startswith("-") else None
        arguments = ["tune", name or "lstm", *words[2 + bool(name):]]
    else:
        arguments = words[3:] if words[1:3] == ["-m", "zoo"] else words[1:]
    try:
        build_parser().parse_args(arguments)
    except SystemExit as error:
        pytest.fail(f"`{' '.join(words)}` does not parse (exit {error.code})")


def test_the_python_blocks_run_in_order(tmp_path, subprocess_env):
    source = "\n\n".join(blocks("python"))
    for name, path in DATA.items():
        if name in source:
            if not path.is_file():
                pytest.skip(f"the README's Python reads {name}; {path} is absent")
            (tmp_path / name).symlink_to(path.resolve())
    script = tmp_path / "readme.py"
    script.write_text(source)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=subprocess_env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
