"""The layout's rules, read from the source: imports run downward only (README, Development)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT, assert_paddle_free

PACKAGE = ROOT / "rec"
DOMAIN = ("rec.twotower", "rec.ctr", "rec.models", "rec.runtime", "rec.trainer", "rec.rank")
CLI = ("rec.cli", "rec.stages")
# folder or module -> the rec modules it must not import (at any depth, even inside functions)
RULES = {
    "rec/models/": ("rec.",),  # nn.Layer classes only (they may reuse each other's layers):
    #                            no files, no console, no glue
    "rec/datasets/": DOMAIN + CLI,  # raw formats and the .npy contract
    "rec/metrics.py": ("rec.",),  # pure numpy
    "rec/scoring.py": ("rec.",),
    "rec/runtime.py": DOMAIN[:3] + ("rec.trainer", "rec.rank") + CLI,  # knows no model
    "rec/trainer.py": DOMAIN[:3] + ("rec.rank",) + CLI,
    "rec/twotower/": ("rec.ctr",) + CLI,
    "rec/ctr/": CLI,
    "rec/rank/": ("rec.ctr",) + CLI,  # recall channels and the rank stage
    **{f"rec/{name}.py": ("rec.datasets",) + DOMAIN + CLI
       for name in ("paths", "atomic", "errors", "console", "manifest", "interrupts",
                    "recovery", "lock", "unit")},
    "rec/build_info.py": DOMAIN + CLI,  # no paddle: `rec --version` reads files
}


def rec_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("rec.")}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_downward(path):
    where = str(path.relative_to(ROOT))
    forbidden = [prefix for rule, prefixes in RULES.items() if where.startswith(rule)
                 for prefix in prefixes]
    if not where.startswith(("rec/stages/", "rec/cli.py", "rec/__main__.py")):
        forbidden += CLI  # only the command line imports the command line
    allowed = "rec.models" if where.startswith("rec/models/") else None
    bad = sorted(name for name in rec_imports(path)
                 if any(name == p.rstrip(".") or name.startswith(p.rstrip(".") + ".")
                        for p in forbidden)
                 and not (allowed and (name == allowed or name.startswith(allowed + "."))))
    assert not bad, f"{where} imports {', '.join(bad)}"


def test_every_package_says_what_it_holds():
    for init in PACKAGE.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"


def test_version_and_status_import_no_model_code(tmp_path):
    assert_paddle_free(["--version"], ["--output-dir", str(tmp_path), "status"],
                       forbidden=("paddle", "rec.models", "rec.twotower", "rec.ctr",
                                  "rec.trainer", "rec.runtime"))


def test_no_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
