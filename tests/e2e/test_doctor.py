"""``sparkimg-ml doctor``: what the installed metadata declares, supported versions, executors.

The doctor reads the installed distribution's metadata; these tests give it a
distribution of their own (a ``dist-info`` folder first on ``sys.path``) with known
requirements, so every kind of finding is produced on purpose. The real wheel's
metadata is checked in tests/test_wheel_install.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from sparkimg_ml import __version__
from sparkimg_ml.cli import doctor, main

ROOT = Path(__file__).resolve().parents[2]


def _fake_distribution(root: Path, version: str, requires: list[str], extras: list[str]) -> None:
    info = root / f"sparkimg_ml-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", "Name: sparkimg_ml", f"Version: {version}"]
    lines += [f"Provides-Extra: {extra}" for extra in extras] + [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    # An installed distribution whose module fails to import.
    broken = root / "brokenpkg_sparkimg-1.5.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenpkg-sparkimg\nVersion: 1.5\n")
    (root / "brokenpkg_sparkimg.py").write_text("raise RuntimeError('boom at import')\n")


@pytest.fixture
def declared_by(tmp_path, monkeypatch):
    def declare(requires: list[str], extras: list[str], version: str = __version__) -> None:
        _fake_distribution(tmp_path, version, requires, extras)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "brokenpkg_sparkimg", raising=False)

    return declare


def test_doctor_checks_exactly_the_declared_requirements(declared_by, capsys):
    import numpy

    declared_by([
        "numpy>=1.20", "no-such-dist-sparkimg>=1.0", "pillow>=999", "brokenpkg-sparkimg>=1.0",
        'no-such-backend-sparkimg>=2; extra == "fakeextra"', 'numpy; extra == "numbers"', 'pytest; extra == "test"',
    ], ["fakeextra", "numbers", "test"])
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    section = out.split("dependencies (install_requires):\n", 1)[1].split("optional extras:\n", 1)
    dependencies, extras = section[0], section[1].split("supported combinations:", 1)[0]
    from PIL import __version__ as pillow

    assert dependencies.splitlines() == [
        f"  ok       numpy {numpy.__version__}",
        "  MISSING  no-such-dist-sparkimg>=1.0 is not installed: pip install 'no-such-dist-sparkimg>=1.0'",
        f"  MISSING  pillow {pillow} does not meet pillow>=999: pip install 'pillow>=999'",
        "  FAILED   brokenpkg-sparkimg 1.5 is installed but `import brokenpkg_sparkimg` fails: "
        "RuntimeError: boom at import",
    ]
    assert extras.splitlines() == [
        "  no       [fakeextra] needs no-such-backend-sparkimg -> pip install 'sparkimg_ml[fakeextra]'",
        f"  ok       [numbers] numpy {numpy.__version__} (imported: numpy)",
    ]  # the development extras (test, dev) are not listed
    assert "requests" not in out and "note " not in out
    assert out.rstrip().endswith("3 problem(s) found")


def test_doctor_passes_when_every_declared_requirement_is_met(declared_by, capsys):
    declared_by(["numpy>=1.20", "pyarrow>=15"], [])
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  ok       Python 3\.\d+ \(supported: 3\.10 to 3\.13\)$", out, flags=re.MULTILINE)
    assert "supported combinations: Python 3.10-3.13; pyspark 3.5 (Python 3.10-3.11, with numpy<2, pyarrow<26, " \
           "pandas<3); " in out
    assert out.rstrip().endswith("everything needed is present")


def test_doctor_says_when_the_installed_metadata_is_another_version(declared_by, capsys):
    declared_by(["numpy>=1.20"], [], version="0.0.1")
    main(["doctor"])
    assert (f"  note     the installed metadata is sparkimg_ml 0.0.1, but this is {__version__} from "
            f"{Path(doctor.__file__).parent.parent}: the checks follow that metadata") in capsys.readouterr().out


@pytest.mark.parametrize(("python", "pyspark", "java", "expected"), [
    ((3, 10), "3.5.9", 17, ["ok", "ok", "ok"]),
    ((3, 13), "4.3.0", 21, ["ok", "ok", "ok"]),
    ((3, 10), "4.1.4", 17, ["ok", "ok", "ok"]),
    ((3, 13), "3.5.9", 17, ["ok", "untested", "ok"]),
    ((3, 14), "4.3.0", 17, ["untested", "untested", "ok"]),
    ((3, 11), "4.4.0", 25, ["ok", "untested", "untested"]),
    ((3, 9), "3.4.1", 11, ["UNSUPPORTED", "UNSUPPORTED", "UNSUPPORTED"]),
    ((3, 10), "4.3.0", 17, ["ok", "UNSUPPORTED", "ok"]),
])
def test_supported_python_pyspark_java_combinations(monkeypatch, python, pyspark, java, expected):
    monkeypatch.setattr(doctor, "installed_version", {"numpy": "1.26.4", "pyarrow": "25.0.0", "pandas": "2.2.3"}.get)
    checks = doctor.python_pyspark_java(python, pyspark, java)
    assert [c.status for c in checks] == expected, [c.line for c in checks]


def test_pyspark_35_with_numpy_2_or_pyarrow_26_is_unsupported_and_names_the_constraints(monkeypatch):
    monkeypatch.setattr(doctor, "installed_version", {"numpy": "2.4.6", "pyarrow": "26.0.1", "pandas": "2.2.3"}.get)
    lines = [c.line for c in doctor.python_pyspark_java((3, 10), "3.5.9", 17) if c.status == "UNSUPPORTED"]
    assert lines == [
        "pyspark 3.5 with numpy 2.4.6: needs numpy<2 (pip install -c constraints/pyspark-3.5.txt, or "
        "'numpy<2' 'pyarrow<26' 'pandas<3')",
        "pyspark 3.5 with pyarrow 26.0.1: needs pyarrow<26 (pip install -c constraints/pyspark-3.5.txt, or "
        "'numpy<2' 'pyarrow<26' 'pandas<3')",
    ]


def test_constraints_file_holds_the_pins_the_doctor_names():
    lines = [line.split("#")[0].strip() for line in (ROOT / "constraints" / "pyspark-3.5.txt").read_text().splitlines()]
    pins = {re.split(r"[<>=]", line, maxsplit=1)[0]: SpecifierSet(line[len(re.split(r'[<>=]', line)[0]):])
            for line in lines if line}
    assert set(pins) == {"pyspark", "numpy", "pyarrow", "pandas"}
    assert "3.5.9" in pins["pyspark"] and "4.0.0" not in pins["pyspark"]
    for name, (op, bound) in doctor.PYSPARK_35_PINS.items():
        assert Version(bound) not in pins[name] and op == "<"
        assert Version(str(int(bound.split(".")[0]) - 1) + ".99") in pins[name]


SPECIFIERS = [">=1.24", "<2", ">=15.0,<26", "==3.5.*", "!=4.0.*", "~=4.1", "~=2.0.1", "==1.26.4", "<=2.0", ">2"]
VERSIONS = ["1.23.5", "1.24", "1.24.0", "1.26.4", "2.0", "2.0.0", "2.0.1", "2.1.0", "3.5.0", "3.5.9", "4.0.5",
            "4.1.4", "4.3.0", "15.0.0", "25.0.0", "26.0.1", "2026.10.19.post1"]


@pytest.mark.parametrize("specifier", SPECIFIERS)
def test_satisfies_agrees_with_packaging(specifier):
    parsed = doctor.parse_requirement("x" + specifier).specifier
    for version in VERSIONS:
        assert doctor.satisfies(version, parsed) == (Version(version) in SpecifierSet(specifier)), version


def test_parse_requirement_reads_names_extras_markers():
    requirement = doctor.parse_requirement('moto[server]>=5.0; python_version >= "3.10" and extra == "test"')
    assert (requirement.name, requirement.specifier, requirement.extra, requirement.marker) == (
        "moto", [(">=", "5.0")], "test", 'python_version >= "3.10"')
    assert doctor.parse_requirement("certifi").specifier == []
    with pytest.raises(ValueError, match="cannot read the version specifier of 'numpy>=1.2 junk'"):
        doctor.parse_requirement("numpy>=1.2 junk")


def test_doctor_spark_says_ship_when_executors_cannot_import_the_package(tmp_path):
    # Workers on a bare interpreter of the same version (no sparkimg_ml; pyspark comes from Spark's own
    # pyspark.zip); the driver imports this checkout without exporting PYTHONPATH to the workers.
    bare = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert bare.exists() and not Path(sys.prefix).samefile(sys.base_prefix)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_DRIVER_PYTHON")}
    env.update(PYSPARK_PYTHON=str(bare), SPARK_LOCAL_IP="127.0.0.1")
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from sparkimg_ml.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "doctor", "--spark"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=400)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"Python workers run {bare} unless the cluster sets its own" in result.stdout
    assert ("  FAILED   executors cannot import sparkimg_ml (ModuleNotFoundError): call sparkimg_ml.ship(spark) "
            "after creating the session, or install sparkimg_ml where the executors' Python runs (PYSPARK_PYTHON)"
            ) in result.stdout, result.stdout
