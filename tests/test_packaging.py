"""What a user who installs flowspec gets: the shipped specs as package data and by name, the
JSON Schema, the license and type marker, optional extras, and a README quick start that CI runs
as printed."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

import flowspec
from flowspec.cli import main
from flowspec.spec.reference import json_schema
from flowspec.spec.shipped import SPECS_DIR, shipped_spec, shipped_specs
from flowspec.spec.source import read_source
from tests.helpers import ROOT, SPEC_FILES

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_shipped_specs_are_the_repository_specs() -> None:
    assert SPECS_DIR.resolve() == (ROOT / "specs").resolve()  # one copy, linked
    assert set(shipped_specs()) == {p.stem for p in (ROOT / "specs").glob("*.yaml")}
    assert "specs/*.yaml" in PYPROJECT["tool"]["setuptools"]["package-data"]["flowspec"]
    assert shipped_spec("realnvp_moons.yaml") == shipped_spec("realnvp_moons")
    with pytest.raises(flowspec.SpecError) as exc:
        shipped_spec("realnvp_moon")
    assert "did you mean 'realnvp_moons'?" in (exc.value.diagnostics[0].hint or "")


@pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="no setuptools")
def test_the_wheel_ships_specs_license_and_type_marker(tmp_path: Path) -> None:
    import setuptools

    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (77, 0):
        pytest.skip("the build needs setuptools >= 77")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("flowspec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"flowspec/specs/{p.name}" for p in (ROOT / "specs").glob("*.yaml")} <= names
    assert "flowspec/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_license_type_marker_and_optional_extras() -> None:
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert PYPROJECT["project"]["license"] == "MIT" and (ROOT / "flowspec" / "py.typed").exists()
    dependencies = " ".join(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "scikit-learn" not in dependencies and "scikit-learn" in " ".join(extras["digits"])
    assert {"digits", "tensorboard", "export"} <= set(extras)


def test_specs_command_lists_and_copies(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["specs"]) == 0
    listed = capsys.readouterr().out
    for name in shipped_specs():
        assert re.search(rf"^  {name}\s", listed, re.M), name
    assert main(["specs", "nice_moons", "-o", str(tmp_path / "mine.yaml")]) == 0
    assert (tmp_path / "mine.yaml").read_text() == shipped_spec("nice_moons").read_text()
    assert main(["specs", "nope"]) == 1 and "spec-missing" in capsys.readouterr().err


def test_train_and_validate_take_a_shipped_name(tmp_path: Path) -> None:
    assert main(["validate", "realnvp_moons"]) == 0
    out = tmp_path / "run"
    assert main(["train", "realnvp_moons", "--steps", "2", "--out", str(out), "--quiet",
                 "--no-figures"]) == 0  # fmt: skip
    assert flowspec.load(out / "model.safetensors").spec.name == "realnvp_moons"
    assert flowspec.load_spec("nice_moons").name == "nice_moons"  # from Python too


def test_schema_command_and_every_shipped_spec_validates_against_it(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    assert main(["schema", "-o", str(tmp_path / "flowspec.schema.json")]) == 0
    schema = json.loads((tmp_path / "flowspec.schema.json").read_text())
    assert schema == json.loads(json.dumps(json_schema()))
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    for path in SPEC_FILES:
        errors = list(validator.iter_errors(read_source(path).data))
        assert not errors, (path.name, errors[0].message)
    broken = read_source(ROOT / "specs" / "realnvp_moons.yaml").data
    broken["layers"][0]["body"][1]["net"]["hiden"] = [8]  # a typo the schema must catch
    assert list(validator.iter_errors(broken))
    docs = (ROOT / "docs" / "spec.md").read_text()
    assert "# yaml-language-server: $schema=" in docs and "flowspec schema -o" in docs


def _quickstart() -> list[str]:
    """The README's quick start, as a reader sees it: the one-line bash blocks of that section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_ci_refuses_a_readme_whose_test_command_differs(tmp_path: Path) -> None:
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "run").write_text((ROOT / ".ci" / "run").read_text())
    readme = (ROOT / "README.md").read_text()
    (tmp_path / "README.md").write_text(readme.replace('-m "not slow"', "-k nothing", 1))
    run = subprocess.run(["bash", str(tmp_path / ".ci" / "run")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)  # fmt: skip
    assert run.returncode == 1 and "must be the test command" in run.stderr


def test_quick_start_is_two_commands_that_ci_reads_from_the_readme() -> None:
    commands = _quickstart()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert commands[0].startswith("python3 -m venv") and "flowspec train" in commands[0]
    assert "pytest" in commands[1]
    printed = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-quickstart"],
                             capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert printed.returncode == 0 and printed.stdout.splitlines() == commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[0] not in ci  # the set-up is read from the README, not copied
    assert f"TESTS='{commands[1]}'" in ci  # the test command: CI refuses a README that differs
    assert "--index-url https://download.pytorch.org/whl/cpu" in (ROOT / "README.md").read_text()
