"""The layout's rules, read from the source: imports run downward only (README, Development)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT, assert_paddle_free

PACKAGE = ROOT / "rec"
DOMAIN = ("rec.twotower", "rec.ctr", "rec.models", "rec.rank")
ENGINE = ("rec.engine",)
CLI = ("rec.cli", "rec.stages")
CORE = ("paths", "errors", "jsontext", "console", "results", "texttable", "typed", "metrics", "scoring", "build_info",
        "shortlists", "ease", "lanes")
# folder or module -> the rec modules it must not import (at any depth, even inside functions)
RULES = {
    "rec/models/": ("rec.",),  # nn.Layer classes only (they may reuse each other's layers):
    #                            no files, no console, no glue
    "rec/datasets/": DOMAIN + ENGINE + CLI,  # raw formats and the .npy contract
    "rec/metrics.py": ("rec.",),  # pure numpy (and rec.shortlists, rec.ease: ALLOWED)
    "rec/shortlists.py": ("rec.",),
    "rec/ease.py": ("rec.",),
    "rec/scoring.py": ("rec.",),  # pure numpy (and rec.lanes: ALLOWED)
    "rec/lanes.py": ("rec.",),
    "rec/engine/": DOMAIN + ("rec.datasets",) + CLI,  # the paddle engine knows no model
    "rec/twotower/": ("rec.ctr",) + CLI,
    "rec/ctr/": CLI,
    "rec/rank/": ("rec.ctr",) + CLI,  # recall channels and the rank stage
    "rec/storage/": ("rec.datasets", "rec.engine") + DOMAIN + CLI,  # files, never a model
    "rec/process/": ("rec.datasets", "rec.engine", "rec.storage") + DOMAIN + CLI,  # signals
    **{f"rec/{name}.py": ("rec.datasets", "rec.engine", "rec.storage", "rec.process")
       + DOMAIN + CLI for name in CORE},  # the core: imports only the core
    "rec/build_info.py": ("rec.",),  # no paddle: `rec --version` reads files
}

# a module's exceptions to its rules
ALLOWED = {"rec/metrics.py": ("rec.shortlists", "rec.ease"), "rec/scoring.py": ("rec.lanes",)}


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
    allowed = ALLOWED.get(where, ("rec.models",) if where.startswith("rec/models/") else ())
    bad = sorted(name for name in rec_imports(path)
                 if any(name == p.rstrip(".") or name.startswith(p.rstrip(".") + ".")
                        for p in forbidden)
                 and not any(name == a or name.startswith(a + ".") for a in allowed))
    assert not bad, f"{where} imports {', '.join(bad)}"


def test_every_package_says_what_it_holds():
    for init in PACKAGE.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"


def test_version_and_status_import_no_model_code(tmp_path):
    assert_paddle_free(["--version"], ["--output-dir", str(tmp_path), "status"],
                       forbidden=("paddle", "rec.models", "rec.twotower", "rec.ctr",
                                  "rec.engine.trainer", "rec.engine.runtime"))


def test_no_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def readme_layout() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Layout")
    return text[start:text.index("```\n\n", text.index("```", start) + 3)]


def test_the_readme_layout_names_every_folder_and_module_and_the_rules_cover_every_folder():
    layout = readme_layout()
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert [f for f in folders if f"rec/{f}/" not in layout] == []
    for folder in folders:
        names = [p.stem for p in (PACKAGE / folder).glob("*.py") if p.stem != "__init__"]
        if folder != "stages":  # one module per command, listed by `rec --help`
            assert [n for n in names if f"{n}.py" not in layout] == [], folder
    core = [p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    assert [n for n in core if f"{n}.py" not in layout] == []
    ruled = {rule.split("/")[1] for rule in RULES if rule.endswith("/")}
    assert sorted(set(folders) - ruled - {"stages"}) == []  # stages: only they import the CLI
    assert sorted(set(core) - set(CORE) - {"cli"}) == []  # cli: the top, imports anything
