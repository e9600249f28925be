"""Each package is its own distribution: built alone, with its version, README and py.typed."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p for p in (REPO / "packages").iterdir() if (p / "pyproject.toml").exists())


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_package_builds_alone_with_py_typed(package: Path, tmp_path: Path) -> None:
    uv = pytest.importorskip("uv").find_uv_bin()
    subprocess.run(
        [uv, "build", "--quiet", "--wheel", "--out-dir", str(tmp_path), str(package)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith(package.name.replace("-", "_") + "-")
    names = zipfile.ZipFile(wheel).namelist()
    import_name = "pashmap" if package.name == "pashmap-core" else package.name.replace("-", "_")
    assert f"{import_name}/py.typed" in names
    assert f"{import_name}/__init__.py" in names
    assert not any(n.startswith(("tests/", "src/")) for n in names)
    assert any(n.endswith("licenses/LICENSE") for n in names)
    (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata_name).decode()
    assert "Project-URL: Homepage, https://pypi.org/project/" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_sdist_carries_the_license_and_no_stray_files(package: Path, tmp_path: Path) -> None:
    import tarfile

    uv = pytest.importorskip("uv").find_uv_bin()
    subprocess.run(
        [uv, "build", "--quiet", "--sdist", "--out-dir", str(tmp_path), str(package)],
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    assert "LICENSE" in names
    assert ".gitignore" not in names


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_siblings_are_pinned_to_compatible_versions(package: Path) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    for requirement in requirements:
        if requirement.startswith("pashmap"):
            assert ">=" in requirement, requirement
            assert "<" in requirement, requirement


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_package_has_its_own_readme_and_version(package: Path) -> None:
    assert (package / "README.md").read_text().strip()
    import_name = "pashmap" if package.name == "pashmap-core" else package.name.replace("-", "_")
    version_file = package / "src" / import_name / "_version.py"
    assert version_file.read_text().startswith("__version__ = ")


def test_the_root_is_not_a_distribution() -> None:
    assert "[project]" not in (REPO / "pyproject.toml").read_text()


def test_readme_opens_with_the_two_command_lines() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert lines[0] == "```"
    assert lines[3] == "```"
    demo, test = lines[1], lines[2]
    assert demo.endswith("hatch run demo")
    assert test.endswith("hatch test")
    for line in (demo, test):
        assert line.startswith("python3 -m venv")
