"""Optional parts of vaelac without their extras, and the install hints that name the extras.

vaelac is installed from a clone of its repository (or a wheel built from it), not from a
package index, so a hint must say ``python -m pip install ".[extra]"``, never ``vaelac[extra]``
(issue 21, items 6-8)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# `pip install vaelac`, `pip install "vaelac[test]"`, `pip install -U 'vaelac[train]'`...:
# an install from a package index where vaelac is not published
INDEX_HINT = re.compile(r"""pip3?\s+install\s+(?:-\S+\s+)*["']?vaelac\b""")


def _shipped_text_files():
    """The code and docs a user reads: the packages' sources and messages, their docs."""
    for folder in ("reference", "spec", "plugin", "conformance", "docs"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".txt") and path.is_file():
                yield path
    yield REPO / "README.md"


def test_no_install_hint_names_a_package_index():
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
             for path in _shipped_text_files()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if INDEX_HINT.search(line)]
    assert not found, "install hints naming a package index vaelac is not on:\n" + "\n".join(found)


def test_the_training_hint_installs_the_extra_from_the_repository():
    code = ("import sys; sys.modules['audiomentations'] = None\n"
            "from vaelac.cli import _training_missing\nprint(_training_missing())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'python -m pip install ".[train]"' in out.stdout, out.stdout
    assert not INDEX_HINT.search(out.stdout)


def _without(module: str, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in which ``module`` cannot be imported."""
    prelude = f"import sys\nsys.modules[{module!r}] = None  # import {module} -> ImportError\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_pydub_adapter_without_pydub_raises_one_clear_project_error():
    out = _without("pydub", """
import vaelac, vaelac.plugin
try:
    vaelac.plugin.register()
except vaelac.MissingDependencyError as exc:
    assert isinstance(exc, ImportError) and isinstance(exc, vaelac.VaeError)
    print("RAISED", exc)
""")
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("RAISED ") and "\n" not in line, line
    assert "pydub" in line and 'python -m pip install ".[pydub]"' in line, line


def test_conformance_without_hypothesis_stops_at_start_up_with_one_line():
    out = _without("hypothesis", """
from vaelac.conformance.runner import main
sys.exit(main(["--decoder", "exit 1", "--quick"]))
""")
    assert out.returncode not in (0, 1), (out.returncode, out.stdout, out.stderr)  # 1: cases failed
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "hypothesis" in lines[0], out.stderr
    assert 'python -m pip install ".[test]"' in lines[0], lines[0]
    assert "PASS" not in out.stdout and "FAIL" not in out.stdout, out.stdout  # no case ran


def test_conformance_run_api_without_hypothesis_raises_before_any_case():
    out = _without("hypothesis", """
import vaelac
from vaelac.conformance import runner
ran = []
runner.check_vectors = lambda *a, **k: ran.append(1) or []
try:
    runner.run(decoder="exit 1", quick=True)
except vaelac.MissingDependencyError as exc:
    print("RAISED", bool(ran), exc)
""")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("RAISED False ") and "hypothesis" in out.stdout, out.stdout


def test_missing_compiled_kernels_warn_how_slow_and_what_to_install():
    """The pure-Python kernels are a test twin, not an install option (the 5 s demo decodes in
    about 2 minutes with them): the warning says so and names the way out."""
    out = _without("vaelac._kernels", """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as seen:
    from vaelac import _backend
assert not _backend.COMPILED
print(" | ".join(str(w.message) for w in seen))
""")
    assert out.returncode == 0, out.stderr
    assert "hundreds of times slower" in out.stdout and "install a wheel" in out.stdout, out.stdout
    assert "python3-dev" in out.stdout, out.stdout


def test_cluster_without_distributed_is_one_line_naming_the_dask_extra(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    out = _without("distributed", f"""
from vaelac.cli import main
sys.exit(main(["encode", {str(tmp_path / 'a.wav')!r}, "-o", {str(tmp_path / 'o')!r},
               "--cluster", "local:1"]))
""")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "distributed" in lines[0], out.stderr
    assert 'python -m pip install ".[dask]"' in lines[0] and not INDEX_HINT.search(lines[0])


def test_the_cli_without_cluster_imports_no_dask(tmp_path):
    """--cluster is the only way into dask: a plain encode (and the parser that offers
    --cluster) imports neither dask nor distributed."""
    wav = REPO / "reference" / "data" / "demo.wav"
    code = f"""
from vaelac.cli import main
rc = main(["encode", "-0", "-q", {str(wav)!r}, "-o", {str(tmp_path / 'd.vae')!r}])
help_text = __import__("io").StringIO()
import contextlib
with contextlib.redirect_stdout(help_text):
    try:
        main(["encode", "--help"])
    except SystemExit:
        pass
print(rc, "--cluster" in help_text.getvalue(),
      sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
"""
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True", "[]"], out.stdout
