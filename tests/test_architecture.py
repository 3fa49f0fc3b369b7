"""The layout rules of docs/architecture.md, checked on the source: stages meet only through
files, shared layers import no stage, the package's own imports sit at module level."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bumphunt

PACKAGE = Path(bumphunt.__file__).parent
#: Stage packages (or modules): each reads the files of the one before and writes its own.
STAGES = ("simulation", "kinfit", "select", "shapes", "scan", "exclusion", "count", "report")
#: Modules that drive stages and so may import any of them (inside their commands).
DRIVERS = ("cli", "__init__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported bumphunt module, inside a function?) for every import of ``path``."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    functions = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                 for n in ast.walk(f)}  # fmt: skip
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name == "bumphunt" or name.startswith("bumphunt."):
                yield name, id(node) in functions


def _unit(module: str) -> str:
    """The top-level part of the package a module belongs to (``bumphunt.scan.stage`` -> ``scan``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_the_package():
    names = {_module_name(p) for p in SOURCES}
    assert {"bumphunt.scan.stage", "bumphunt.shapes.stage", "bumphunt.simulation.stage", "bumphunt.kinfit"} <= names
    edges = [(p, m) for p in SOURCES for m, _ in _imports(p)]
    assert len(edges) > 100  # the walk resolves relative imports: a broken walk would find none


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_no_stage_imports_another_stage(path):
    unit = _unit(_module_name(path))
    if unit in DRIVERS:
        return
    for module, _ in _imports(path):
        other = _unit(module)
        if other in STAGES and other != unit:
            where = f"stage {unit!r}" if unit in STAGES else f"shared module {unit!r}"
            pytest.fail(f"{_module_name(path)} ({where}) imports {module}: stages exchange files, not code")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_own_imports_are_at_module_level(path):
    if _unit(_module_name(path)) in DRIVERS:
        return  # the CLI imports a stage when its command runs, to keep --help fast
    hidden = sorted({module for module, in_function in _imports(path) if in_function})
    assert not hidden, f"{_module_name(path)} imports {hidden} inside a function"


def test_public_api_is_lazy_and_listed():
    code = (
        "import sys, bumphunt; before = set(sys.modules); names = dir(bumphunt); "
        "print(sorted(m for m in ('numba', 'scipy', 'uproot', 'zfit', 'tensorflow', 'matplotlib') if m in before)); "
        "print(all(name in names for name in bumphunt.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
    for name in bumphunt.__all__:
        assert getattr(bumphunt, name) is not None
    # stage runners follow one naming rule and none shadows a subpackage
    runners = [name for name in bumphunt.__all__ if name.startswith("run_")]
    assert runners == [
        "run_count", "run_exclusion", "run_kinfit", "run_scan", "run_select", "run_shapes", "run_simulation",
    ]  # fmt: skip
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")} | {p.stem for p in PACKAGE.glob("*.py")}
    assert not subpackages & set(bumphunt.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        bumphunt.nothing  # noqa: B018


def test_one_jit_policy():
    offenders = [
        p.name for p in SOURCES if p.name != "_jit.py" and ("njit(" in p.read_text() or "@nb." in p.read_text())
    ]
    assert not offenders, f"numba kernels must use bumphunt._jit: {offenders}"


def test_output_paths_come_from_the_layout():
    offenders = [_module_name(p) for p in SOURCES if p.name != "layout.py" and '/ "kinfit"' in p.read_text()]
    assert not offenders
