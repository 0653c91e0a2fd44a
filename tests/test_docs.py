"""The README documents every command, option and config key (fails when one is added undocumented)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from digest.cli import main
from digest.config import SCHEMA

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, cmd in sorted(group.commands.items()):
        found.append((f"{prefix}{name}", cmd))
        if isinstance(cmd, click.Group):
            found.extend(commands(cmd, f"{prefix}{name} "))
    return found


@pytest.mark.parametrize(("name", "command"), commands(main), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_and_option_is_documented(name: str, command: click.Command) -> None:
    assert f"digest {name}" in README, f"`digest {name}` is not in the README"
    for param in command.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--help",):
                assert opt in README, f"option {opt} of `digest {name}` is not in the README"


@pytest.mark.parametrize(("section", "key"), [(s, k) for s, keys in SCHEMA.items() for k in keys], ids=lambda v: str(v))
def test_every_config_key_is_documented(section: str, key: str) -> None:
    table = README.split(f"### [{section}]", 1)
    assert len(table) == 2, f"the README has no [{section}] section"
    body = table[1].split("\n### ", 1)[0]
    assert re.search(rf"`{re.escape(key)}`", body), f"{section}.{key} is not documented"


def test_readme_opens_with_the_two_commands() -> None:
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    assert "digest run --site examples/site" in block[0]
    assert block[1].endswith("pytest")
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text("utf-8")
    assert block[1] in ci
