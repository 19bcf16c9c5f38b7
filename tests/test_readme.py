"""The documentation's code works: README.md, CONTRIBUTING.md and every docs/*.md.

In each page every `zoo` command line parses, every tuning script it names exists, its relative
links lead to files (and headings) that exist, and its ```python blocks run top to bottom, in
order, in one fresh process per page (as a reader would paste that page's blocks), with the data
they name where ../shared/data has it. (A ```py block is a sketch with placeholders, such as the
template of a new entry, and is not run.) The README's table of entries is generated from the
weight cards, and checked against them here; `python tests/test_readme.py` rewrites it.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
SHARED = ROOT / ".." / "shared" / "data"
# File names the pages' Python blocks read, and where the shared data has them.
DATA = {"usc_had.h5": SHARED / "har" / "usc_had.h5"}
# The generated table sits between these two lines of README.md.
TABLE_START = "<!-- entries table: generated from the weight cards by `python tests/test_readme.py` -->"
TABLE_END = "<!-- end of the entries table -->"
README_MAX_LINES = 250
CELL_MAX_CHARS = 200


def name(page: Path) -> str:
    """A page's path relative to the repository root, as tests are named."""
    return page.relative_to(ROOT).as_posix()


def blocks(page: Path, language: str) -> list[str]:
    """The bodies of a page's fenced blocks of `language` (```bash, ```python, ```py)."""
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.DOTALL)


def command_lines(page: Path):
    """Each `zoo ...` and `python tuning/...` command of a page's bash blocks, as words."""
    for block in blocks(page, "bash"):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            for command in re.split(r"&&|;", line):
                try:
                    words = shlex.split(command.rstrip("& "))
                except ValueError:  # a quoted value continued on the next line (TF_CONFIG=')
                    assert " zoo " not in f" {command} ", f"unparsable line in {name(page)}: {line}"
                    continue
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
                    words = words[1:]
                if words and (Path(words[0]).name == "zoo" or words[1:3] == ["-m", "zoo"]):
                    yield words
                elif len(words) > 1 and words[0] == "python" and words[1].startswith("tuning/"):
                    yield words


COMMANDS = [(page, words) for page in PAGES for words in command_lines(page)]
RUNNABLE = [page for page in PAGES if blocks(page, "python")]


def entries_table() -> str:
    """The README's table of entries, from the registry and each shipped set's card: the figure
    is the entry's headline metric as the card records it, with the split the card names."""
    import zoo
    from zoo import weights

    rows = ["| entry | what | shipped set | figure | measured on |", "|---|---|---|---|---|"]
    for entry_name in zoo.list():
        entry = zoo.get_entry(entry_name)
        what = (entry.description.splitlines() or [""])[0].replace("|", "\\|")
        sets = weights.available(entry_name)
        if not sets:
            rows.append(f"| `{entry_name}` | {what} | none shipped | | |")
        for tag, card in sets.items():
            donor = f" ({card['entry']}'s)" if card.get("entry", entry_name) != entry_name else ""
            key = entry.task.metric.name.removeprefix("val_")
            value = (card.get("metrics") or {}).get(key)
            figure = f"{key} {value:.3f}" if isinstance(value, (int, float)) else f"{key} not recorded"
            rows.append(f"| `{entry_name}` | {what} | `{tag}`{donor} | {figure} | "
                        f"{weights.measured_on(card)} |")
    return "\n".join(rows)


def readme_table(text: str) -> str:
    """The table between the README's two marker lines."""
    assert TABLE_START in text and TABLE_END in text, "README.md lost the entries table's markers"
    return text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()


def test_the_pages_show_commands_and_python():
    assert len(COMMANDS) >= 10 and sum(len(blocks(page, "python")) for page in PAGES) >= 3
    assert blocks(README, "python") and any(page == README for page, _ in COMMANDS)
    assert (ROOT / "CONTRIBUTING.md").is_file() and len(PAGES) > 2, "CONTRIBUTING.md or docs/ is missing"


def test_the_readme_keeps_the_ci_test_command():
    """`.ci/run` runs the README's test command; both must say the same."""
    command = ("python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && "
               ".venv/bin/python -m pytest -q -n 2 --dist loadscope")
    assert command in README.read_text()
    assert command.split(" && ")[-1] in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_readme_is_short_and_its_cells_are_too():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, over {README_MAX_LINES}"
    for page in PAGES:
        for line in page.read_text().splitlines():
            if line.startswith("|"):
                for cell in re.split(r"(?<!\\)\|", line.strip().strip("|")):
                    assert len(cell.strip()) <= CELL_MAX_CHARS, f"{name(page)}: a long cell: {cell[:80]}..."


def test_the_entries_table_matches_the_weight_cards():
    assert readme_table(README.read_text()) == entries_table(), (
        "README.md's table of entries differs from the weight cards: "
        "run `python tests/test_readme.py` to rewrite it")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_relative_links_lead_somewhere(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{name(page)} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", linked.read_text(), re.MULTILINE)
            assert anchor in {_anchor(h) for h in headings}, f"{name(page)}: no heading #{anchor}"


@pytest.mark.parametrize("page,words", COMMANDS,
                         ids=[f"{name(p)}: {' '.join(w)[:60]}" for p, w in COMMANDS])
def test_every_command_parses(page, words):
    if words[0] == "python" and words[1].startswith("tuning/"):
        assert (ROOT / words[1]).is_file(), f"{name(page)} names {words[1]}, which does not exist"
        entry = words[2] if len(words) > 2 and not words[2].startswith("-") else None
        arguments = ["tune", entry or "lstm", *words[2 + bool(entry):]]
    else:
        arguments = words[3:] if words[1:3] == ["-m", "zoo"] else words[1:]
    try:
        build_parser().parse_args(arguments)
    except SystemExit as error:
        pytest.fail(f"{name(page)}: `{' '.join(words)}` does not parse (exit {error.code})")


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=name)
def test_the_python_blocks_run_in_order(page, tmp_path, subprocess_env):
    source = "\n\n".join(blocks(page, "python"))
    for data_name, path in DATA.items():
        if data_name in source:
            if not path.is_file():
                pytest.skip(f"{name(page)}'s Python reads {data_name}; {path} is absent")
            (tmp_path / data_name).symlink_to(path.resolve())
    script = tmp_path / "page.py"
    script.write_text(source)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=subprocess_env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{name(page)}:\n{done.stderr[-4000:]}"


if __name__ == "__main__":  # rewrite the README's table of entries from the weight cards
    head, rest = README.read_text().split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    README.write_text(f"{head}{TABLE_START}\n{entries_table()}\n{TABLE_END}{tail}")
    print(f"rewrote the table of entries in {README}")
