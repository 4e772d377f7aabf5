"""docs/ARCHITECTURE.md is true: every name it lists imports, and the layer table holds."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from conftest import REPO

import ddsp_augment

DOC = (REPO / "docs" / "ARCHITECTURE.md").read_text("utf-8")
PACKAGE = REPO / "ddsp_augment"
TOP_LEVEL = {p.stem for p in PACKAGE.glob("*.py")} | {
    p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
}


def _documented_names() -> list[str]:
    """Backticked dotted references whose first part is a module of the package."""
    names = re.findall(r"`((?:[A-Za-z_][A-Za-z0-9_]*\.)+[A-Za-z_][A-Za-z0-9_]*)`", DOC)
    names = [n.removeprefix("ddsp_augment.") if n.startswith("ddsp_augment.") else n for n in names]
    return sorted({n for n in names if n.split(".")[0] in TOP_LEVEL or n in ddsp_augment.__all__})


def _resolve(name: str) -> object:
    """``a.b.c``: the longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("ddsp_augment." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    return getattr(ddsp_augment, name)


def test_the_document_lists_names_and_every_one_imports():
    names = _documented_names()
    assert len(names) > 60  # the packages table, conventions and layers
    missing = []
    for name in names:
        try:
            _resolve(name)
        except (ImportError, AttributeError) as error:
            missing.append(f"{name}: {error}")
    assert not missing, missing


def test_every_public_name_imports():
    assert "__version__" in ddsp_augment.__all__ and len(ddsp_augment.__all__) >= 19
    for name in ddsp_augment.__all__:
        assert getattr(ddsp_augment, name) is not None, name


def _layers() -> dict[str, int]:
    section = DOC.split("## Dependency layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, modules in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE):
        for module in re.findall(r"`([A-Za-z_.]+)`", modules):
            name = "ddsp_augment" if module == "ddsp_augment" else f"ddsp_augment.{module}"
            layers[name] = int(number)
    return layers


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of the package modules ``path`` imports (also inside functions)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for name in candidates:
            if name == "ddsp_augment" or name.startswith("ddsp_augment."):
                found.add(name)
    return found


def _layer_of(name: str, layers: dict[str, int]) -> int | None:
    """Layer of a module, or of the module an imported name lives in."""
    while name:
        if name in layers:
            return layers[name]
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return None


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_module_imports_only_its_layer_or_lower(path):
    layers = _layers()
    module = _module_name(path)
    assert module in layers, f"{module} is missing from the layer table of ARCHITECTURE.md"
    own = layers[module]
    upward = {
        name: _layer_of(name, layers)
        for name in _imports(path, module)
        if (_layer_of(name, layers) or 0) > own
    }
    assert not upward, f"{module} (layer {own}) imports from higher layers: {upward}"


def test_the_layer_check_sees_a_violation(tmp_path):
    """The checker itself: an upward import inside a function is caught."""
    layers = _layers()
    source = tmp_path / "loudness.py"
    source.write_text("def f():\n    from ..sampling.bank import SpeciesBank\n")
    names = _imports(source, "ddsp_augment.features.loudness")
    assert "ddsp_augment.sampling.bank.SpeciesBank" in names
    assert _layer_of("ddsp_augment.sampling.bank.SpeciesBank", layers) == 4
    assert layers["ddsp_augment.features.loudness"] == 2


def test_test_files_have_unique_names():
    """Test folders have no __init__.py (pytest imports each file by its name), so two files of
    one name in different folders would collide."""
    names = [p.name for p in (REPO / "tests").rglob("*.py")]
    assert len(names) == len(set(names)) and "conftest.py" in names
    assert not list((REPO / "tests").rglob("__init__.py"))
