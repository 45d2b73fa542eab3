"""README and docs stay honest: every `tagrank ...` command they show parses, every relative link resolves."""

import re
import shlex

import pytest
import typer

from tests.conftest import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _commands(text: str) -> list[str]:
    """The `tagrank ...` lines of the fenced code blocks (continuations joined, after `&&` too)."""
    commands = []
    for block in re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("tagrank "):
                    commands.append(part)
    return commands


def _protected(ctx) -> list[str]:
    """The subcommand words a group's context holds back (click's name for them moved between versions)."""
    return list(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", None) or [])


def _parse(command: str) -> None:
    """Parse like the CLI would, up to running: unknown options, bad values and missing arguments fail."""
    from tagrank.cli import app

    group = typer.main.get_command(app)
    args = shlex.split(command, comments=True)[1:]
    with group.make_context("tagrank", list(args)) as ctx:
        words = [*_protected(ctx), *ctx.args]
        while True:
            name, sub, rest = group.resolve_command(ctx, words)
            sub_ctx = sub.make_context(name, rest, parent=ctx)
            if not hasattr(sub, "resolve_command"):  # a command, not a group (`index build`)
                return
            group, ctx, words = sub, sub_ctx, [*_protected(sub_ctx), *sub_ctx.args]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_command_shown_parses(document):
    commands = _commands(document.read_text(encoding="utf-8"))
    for command in commands:
        try:
            _parse(command)
        except Exception as exc:  # click's usage errors, typer's conversions
            pytest.fail(f"{document.name}: {command!r} does not parse: {exc}")


def test_the_readme_shows_commands():
    assert len(_commands((REPO / "README.md").read_text(encoding="utf-8"))) >= 10


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves(document):
    text = document.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (document.parent / target.split("#")[0]).exists(), f"{document.name}: broken link {target}"


def test_a_wrong_option_is_caught():
    with pytest.raises(Exception):
        _parse("tagrank rank photo.jpg --topp 5")
    _parse("tagrank rank photo.jpg --top 5")


def test_the_quickstart_shows_what_the_default_model_says(cli, monkeypatch):
    """The README's example output is the embedded model's, as the quickstart command prints it."""
    monkeypatch.chdir(REPO)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = readme.split("tags two example photos:\n\n```\n", 1)[1].split("```", 1)[0]
    result = cli("rank", "examples/cat.jpg", "examples/coffee.jpg", "--top", "5")
    assert result.code == 0 and result.out.strip() == shown.strip()
