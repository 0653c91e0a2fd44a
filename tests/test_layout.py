"""The import rules of the layout (see the README's "Layout"): base modules import only each other; the
stages (collector, templater, sender) import the base and config, never each other; only pipeline imports
the stages; the edges (cli, scheduler, server) import pipeline, models, errors, config and report (and the
command line starts the other two)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "digest"
BASE = {
    "digest.models",
    "digest.records",
    "digest.errors",
    "digest.text",
    "digest.dates",
    "digest.weeks",
    "digest.issues",
}
STAGES = ("digest.collector", "digest.templater", "digest.sender")
EDGES = {"digest.cli", "digest.scheduler", "digest.server"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group_of(name: str) -> str:
    if name in BASE:
        return "base"
    if name == "digest.config" or name.startswith("digest.config."):
        return "config"
    for stage in (*STAGES, "digest.pipeline"):
        if name == stage or name.startswith(stage + "."):
            return stage
    return name  # pipeline, report, the edges, the package itself


def imports_of(path: Path) -> set[str]:
    """Every digest module `path` imports, at the top or inside a function, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "digest"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "digest":
                continue
            # `from digest import pipeline` imports the module digest.pipeline
            subs = {
                f"{target}.{a.name}"
                for a in node.names
                if (PACKAGE.parent / f"{target}.{a.name}".replace(".", "/")).exists()
                or (PACKAGE.parent / (f"{target}.{a.name}".replace(".", "/") + ".py")).exists()
            }
            found |= subs or {target}
    return found


def allowed(importer: str, imported: str) -> bool:
    source, target = group_of(importer), group_of(imported)
    if source == target:
        return True  # the parts of one stage (or of the pipeline) import each other
    if target == "base":
        return source != "base" or imported in BASE  # base modules import only base modules
    if source == "base":
        return False
    if source == "config":
        return target == "config"
    if source in STAGES:
        return target in ("config", source)
    if source == "digest.pipeline":
        return target in ("config", "digest.cache", *STAGES)
    if source == "digest.report":
        return False
    if source in EDGES:
        # the command line starts the other edges (`digest schedule`, `digest serve`)
        return target in ("config", "digest.pipeline", "digest.report", "digest") or (
            source == "digest.cli" and target in EDGES
        )
    return source == "digest"  # the package's own __init__


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_follow_the_layout(path: Path) -> None:
    importer = module_name(path)
    wrong = sorted(i for i in imports_of(path) if group_of(i) != group_of(importer) and not allowed(importer, i))
    assert wrong == [], f"{importer} may not import {wrong}"


def test_only_pipeline_imports_the_stages() -> None:
    importers = {
        module_name(p)
        for p in MODULES
        for i in imports_of(p)
        if group_of(i) in STAGES and group_of(module_name(p)) != group_of(i)
    }
    assert {group_of(i) for i in importers} == {"digest.pipeline"}


@pytest.mark.parametrize(
    ("importer", "imported", "ok"),
    [
        ("digest.collector.reader", "digest.templater.env", False),
        ("digest.server", "digest.sender.ledger", False),
        ("digest.cli", "digest.pipeline", True),
        ("digest.models", "digest.config", False),
        ("digest.weeks", "digest.dates", True),
        ("digest.sender.deliver", "digest.config", True),
        ("digest.report", "digest.models", True),
        ("digest.pipeline", "digest.cache", True),
        ("digest.pipeline.delivery", "digest.sender", True),
        ("digest.pipeline.building", "digest.pipeline.state", True),
        ("digest.collector.entries", "digest.cache", False),
        ("digest.cache", "digest.text", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, ok: bool) -> None:
    assert allowed(importer, imported) is ok


def test_the_pipeline_imports_the_sender_on_first_use() -> None:
    """A preview or a publish never needs SQLAlchemy, dkimpy or dnspython: the pipeline's parts name the
    sender's types for the type checker only, and reach the sender through a proxy on first use."""
    import subprocess
    import sys

    code = "import sys, digest.pipeline; print(sorted(m for m in ('digest.sender', 'sqlalchemy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("part", sorted(p.stem for p in (PACKAGE / "pipeline").glob("*.py") if p.stem != "__init__"))
def test_each_part_of_the_pipeline_imports_first(part: str) -> None:
    """`from digest.pipeline import building` in a fresh interpreter: the package imports its parts on
    first use, and a part asked for by name before anything imported it is that part (it had recursed)."""
    import subprocess
    import sys

    code = f"from digest.pipeline import {part}; print({part}.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-300:]
    assert out.stdout.strip() == f"digest.pipeline.{part}"
