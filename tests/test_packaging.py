"""pyproject.toml lists packages by hand (the folders are mapped); guard that list."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Folder in the repository -> import name it is installed under (pyproject package-dir).
FOLDER_PACKAGES = {
    "omconnect": "omconnect",
    "runtime": "omconnect.runtime",
    "connectors": "omconnect.connectors",
}


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _packages_on_disk() -> set[str]:
    found = set()
    for folder, package in FOLDER_PACKAGES.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            found.add(".".join([package, *relative.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])  # type: ignore[index]
    missing = sorted(_packages_on_disk() - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_package_dir_maps_the_folders() -> None:
    package_dir = _pyproject()["tool"]["setuptools"]["package-dir"]  # type: ignore[index]
    assert package_dir == {package: folder for folder, package in FOLDER_PACKAGES.items()}


def test_mapped_packages_import() -> None:
    runtime = importlib.import_module("omconnect.runtime")
    connectors = importlib.import_module("omconnect.connectors")
    assert Path(runtime.__file__ or "").parent == ROOT / "runtime"
    assert Path(connectors.__file__ or "").parent == ROOT / "connectors"
