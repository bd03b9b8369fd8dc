"""dvc.yaml's source deps must cover every file of ``artshift`` a stage script imports.

DVC only reruns a stage when one of its declared deps changes. If ``pipeline/train.py`` imports
``artshift.train``, which imports ``artshift.checkpoint``, an edit to ``checkpoint.py`` changes what
the stage produces, so ``src/artshift/checkpoint.py`` (or a folder above it) must be a dep of train.

The imports are found statically with ``ast`` and followed transitively. Every import statement
anywhere in a file counts (inside functions and ``if TYPE_CHECKING:`` blocks too): a conservative
over-approximation, as a missing dep means a stale output while an extra one costs only a rerun.
Importing a submodule executes its parent packages' ``__init__.py``, so those count as well.
Non-Python package data (``page.html``) and dynamic imports (``importlib``) are not tracked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "artshift"
STAGE_CMD = re.compile(r"^python\s+(pipeline/[\w.-]+\.py)(?:\s|$)")


def module_file(module: str, src_root: Path) -> Path | None:
    """The file that defines ``module`` (``a.b`` → ``a/b.py`` or ``a/b/__init__.py``), or None."""
    base = src_root.joinpath(*module.split("."))
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, src_root: Path) -> str | None:
    """The dotted name of the module at ``path`` under ``src_root``; None for files outside it."""
    try:
        parts = list(path.resolve().relative_to(src_root.resolve()).with_suffix("").parts)
    except ValueError:
        return None
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or None


def with_parents(module: str) -> set[str]:
    """``module`` and every package above it (``a.b.c`` → a, a.b, a.b.c): importing it runs them all."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def in_package(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or one of its submodules."""
    return module == package or module.startswith(package + ".")


def resolve_relative(node: ast.ImportFrom, path: Path, src_root: Path) -> str | None:
    """The absolute module a ``from .x import y`` in ``path`` names; None if it cannot be resolved
    (a relative import in a file that is not in a package under ``src_root``)."""
    if node.level == 0:
        return node.module
    current = module_name(path, src_root)
    if current is None:
        return None
    parts = current.split(".")
    if path.name != "__init__.py":  # a plain module's package is its parent
        parts = parts[:-1]
    if node.level - 1 > len(parts) - 1:  # climbs above the top-level package
        return None
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imported_modules(path: Path, src_root: Path, package: str) -> set[str]:
    """Every module of ``package`` that an import statement anywhere in ``path`` names.

    ``from p.x import y`` gives ``p.x.y`` when that is a submodule file, else ``p.x`` (y is a name);
    ``p.x`` itself is imported either way. Parent packages are added by ``transitive_files``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve_relative(node, path, src_root)
            if base is None:
                continue
            found.add(base)
            for alias in node.names:
                if alias.name != "*" and module_file(f"{base}.{alias.name}", src_root) is not None:
                    found.add(f"{base}.{alias.name}")
    return {module for module in found if in_package(module, package)}


def transitive_files(script: Path, src_root: Path, package: str) -> set[Path]:
    """The source files of ``package`` that running ``script`` may execute: its imports, their
    imports and so on, plus the ``__init__.py`` of every package on the way."""
    files: set[Path] = set()
    seen: set[str] = set()
    todo = [script]
    while todo:
        for module in imported_modules(todo.pop(), src_root, package):
            for name in with_parents(module) - seen:
                seen.add(name)
                file = module_file(name, src_root)
                if file is not None and file not in files:
                    files.add(file)
                    todo.append(file)
    return files


def stage_script(stage: dict) -> str | None:
    """The script a stage runs, ``pipeline/<name>.py``, or None if its cmd is something else."""
    match = STAGE_CMD.match(str(stage.get("cmd", "")).strip())
    return match.group(1) if match else None


def dep_paths(stage: dict) -> list[PurePosixPath]:
    """A stage's declared deps as paths (an entry may be a plain string or a one-key mapping)."""
    deps = []
    for dep in stage.get("deps") or []:
        name = next(iter(dep)) if isinstance(dep, dict) else dep
        deps.append(PurePosixPath(str(name).rstrip("/")))
    return deps


def covered(file: PurePosixPath, deps: list[PurePosixPath]) -> bool:
    """Whether a dep is ``file`` itself or a folder containing it."""
    return any(dep == file or dep in file.parents for dep in deps)


def missing_deps(stage: dict, root: Path = ROOT, src_root: Path = SRC, package: str = PACKAGE) -> list[str]:
    """The files (relative to ``root``, sorted) that a stage's script and its transitive imports of
    ``package`` need but the stage's deps do not cover. The script itself must be a dep too."""
    script = stage_script(stage)
    if script is None:
        return []
    needed = {PurePosixPath(script)}
    needed.update(PurePosixPath(file.resolve().relative_to(root.resolve()).as_posix())
                  for file in transitive_files(root / script, src_root, package))
    deps = dep_paths(stage)
    return sorted(str(file) for file in needed if not covered(file, deps))


def load_stages(root: Path = ROOT) -> dict[str, dict]:
    """The stages of ``dvc.yaml`` that run a ``pipeline/*.py`` script, by name."""
    config = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    return {name: stage for name, stage in (config.get("stages") or {}).items() if stage_script(stage)}


STAGES = load_stages()


def test_pipeline_has_script_stages():
    assert STAGES, "no `python pipeline/<name>.py` stage found in dvc.yaml"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_imported_sources(name):
    missing = missing_deps(STAGES[name])
    assert not missing, (f"dvc.yaml stage deps miss files the stage imports (add them, or a folder "
                         f"holding them):\n{name}: {', '.join(missing)}")


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_checker_finds_nested_and_relative_imports(tmp_path):
    """A fake package checked by the same helpers: a function-local import, a TYPE_CHECKING one,
    relative ones, a submodule's parents; a missing dep is reported and a folder dep covers all."""
    src = tmp_path / "src"
    write(tmp_path / "pipeline/run.py", "import os\nimport pkg.a\n\nprint(pkg.a.f())\n")
    write(src / "pkg/__init__.py")
    write(src / "pkg/a.py", "def f():\n    from pkg.b import thing\n    return thing\n")
    write(src / "pkg/b.py", "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                            "    from .sub import helper\n\nthing = 1\n")
    write(src / "pkg/sub/__init__.py", "from . import c\n")
    write(src / "pkg/sub/c.py", "from ..d import value\n")
    write(src / "pkg/d.py", "value = 2\n")
    write(src / "pkg/unused.py", "import pkg.a\n")

    assert imported_modules(src / "pkg/a.py", src, "pkg") == {"pkg.b"}
    assert imported_modules(src / "pkg/sub/c.py", src, "pkg") == {"pkg.d"}
    files = transitive_files(tmp_path / "pipeline/run.py", src, "pkg")
    assert {f.relative_to(src).as_posix() for f in files} == {
        "pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/sub/__init__.py", "pkg/sub/c.py", "pkg/d.py"}

    stage = {"cmd": "python pipeline/run.py --fast",
             "deps": ["pipeline/run.py", "src/pkg/__init__.py", "src/pkg/a.py", "src/pkg/sub/", "src/pkg/d.py"]}
    assert missing_deps(stage, tmp_path, src, "pkg") == ["src/pkg/b.py"]
    assert missing_deps({**stage, "deps": ["src/pkg"]}, tmp_path, src, "pkg") == ["pipeline/run.py"]
    assert missing_deps({**stage, "deps": ["pipeline/run.py", "src/pkg"]}, tmp_path, src, "pkg") == []
    assert missing_deps({"cmd": "dvc exp show", "deps": []}, tmp_path, src, "pkg") == []


def _stage_imports() -> dict[str, set[str]]:
    """Each stage's imported project files, relative to the repository (``src/artshift/...``)."""
    return {name: {f.relative_to(ROOT).as_posix() for f in transitive_files(ROOT / stage_script(stage), SRC, PACKAGE)}
            for name, stage in STAGES.items()}


def _dvc_project(root: Path) -> dict:
    """A git + DVC copy of the repository's tracked files at ``root`` whose every stage is recorded
    in a fresh dvc.lock (over placeholder outputs: nothing is run); returns the environment for dvc."""
    import os
    import shutil
    import subprocess
    import sys

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    for name in listed:
        if (ROOT / name).is_file() and name != "dvc.lock" and not name.startswith("tests/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    for stage in STAGES.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            out = root / (next(iter(entry)) if isinstance(entry, dict) else entry)
            if not out.exists():
                folder = out if out.suffix == "" else None
                (folder or out.parent).mkdir(parents=True, exist_ok=True)
                (folder / "placeholder" if folder else out).write_text("{}" if out.suffix == ".json" else "x")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for args in (["git", "init", "-q"], ["dvc", "commit", "-f", "-q"]):
        subprocess.run(args, cwd=root, env=env, check=True, capture_output=True)
    return env


def test_a_changed_source_file_reruns_every_stage_that_imports_it(tmp_path):
    """For one module per stage (the one fewest stages import), an edit makes `dvc status` report
    exactly the stages that import it as changed, and no others."""
    import json
    import subprocess

    env = _dvc_project(tmp_path)
    imports = _stage_imports()
    users = {module: {s for s, files in imports.items() if module in files} for files in imports.values()
             for module in files}
    for stage, files in sorted(imports.items()):
        module = min(files, key=lambda m: (len(users[m]), m))
        original = (tmp_path / module).read_text()
        (tmp_path / module).write_text(original + "\n# edited\n")
        status = subprocess.run(["dvc", "status", "--json"], cwd=tmp_path, env=env, check=True,
                                capture_output=True, text=True).stdout
        (tmp_path / module).write_text(original)
        changed = {name for name, changes in json.loads(status).items()
                   if any("changed deps" in change for change in changes if isinstance(change, dict))}
        assert changed == users[module], f"editing {module} (imported by {stage})"
