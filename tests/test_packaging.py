"""How vaelac installs (issue 21, item 2).

A source install compiles the C kernels: without a C compiler or the Python headers it must stop
with one line saying so. A wheel needs neither: the wheel built here with ``python -m build``
installs into a fresh virtual environment with no compiler on PATH and runs the README's main
job. The kernels' C must build with compilers without GNU extensions (MSVC for the Windows
wheels of [tool.cibuildwheel]).
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "reference" / "_kernels.c"
NEEDS = ("vaelac needs a C compiler and the Python development headers (python3-dev) to build "
         "from source; install them or install a wheel")
# what a copy of the source tree leaves out: build outputs and caches
IGNORED = shutil.ignore_patterns(".git", "build", "dist", "wheelhouse", "*.egg-info", "*.so",
                                 "*.pyd", "*.o", ".hypothesis", "__pycache__", ".pytest_cache",
                                 "vaedec", "vaeenc")


def _bare_env(tmp: Path, path: str) -> dict:
    """An environment with only ``path`` on PATH and no compiler: CC points nowhere."""
    env = {"PATH": path, "HOME": os.environ.get("HOME", str(tmp)), "CC": "/nonexistent",
           "LANG": "C.UTF-8"}
    for keep in ("SYSTEMROOT", "TMPDIR", "PIP_FIND_LINKS", "PIP_CERT", "PIP_INDEX_URL",
                 "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE", "PIP_DEFAULT_TIMEOUT"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    return env


# -- a source build without a compiler -------------------------------------------------------

@pytest.mark.skipif(os.name == "nt", reason="POSIX compilers and a shell-script stand-in")
@pytest.mark.parametrize("how", ["CC=/nonexistent", "no compiler on PATH", "no Python.h"])
def test_a_source_build_without_a_compiler_stops_with_one_line(tmp_path, how):
    """setup.py's build_ext probes the compiler before compiling the kernels: one ``error:``
    line naming what a source build needs and what is missing, no compiler traceback."""
    code = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from setup import BuildExt
from setuptools import Distribution, Extension
dist = Distribution(dict(name="vaelac", ext_modules=[
    Extension("vaelac._kernels", [{str(KERNELS)!r}])]))
cmd = BuildExt(dist)
cmd.build_lib, cmd.build_temp = {str(tmp_path / "lib")!r}, {str(tmp_path / "temp")!r}
cmd.ensure_finalized()
cmd.run()
print("BUILT")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "LDSHARED", "CFLAGS")}
    if how == "CC=/nonexistent":
        env["CC"], missing = "/nonexistent", "no C compiler: /nonexistent not found"
    elif how == "no compiler on PATH":
        (tmp_path / "empty").mkdir()
        env["PATH"] = str(tmp_path / "empty")
        missing = "no C compiler: "
    else:  # a compiler that answers as gcc does on a machine without python3-dev
        cc = tmp_path / "cc"
        cc.write_text("#!/bin/sh\necho 'probe.c:1:10: fatal error: Python.h: No such file or "
                      "directory' >&2\nexit 1\n")
        cc.chmod(0o755)
        env["CC"] = str(cc)
        missing = (f"the C compiler {cc} cannot build a file that includes Python.h: "
                   "probe.c:1:10: fatal error: Python.h: No such file or directory")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert out.returncode != 0 and "BUILT" not in out.stdout, out.stdout + out.stderr
    said = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(said) == 1, said
    assert said[0].startswith(f"error: {NEEDS} ({missing}"), said[0]
    assert "Traceback" not in out.stderr, said[0]
    assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.o"))


# -- the C builds without GNU extensions -----------------------------------------------------

def _preprocess(compiler: list[str], defines: list[str]) -> str:
    """The kernels' own code as a compiler defining only ``defines`` sees it: the system and
    Python headers are left out (their macros stay unexpanded), no compiler macro is
    predefined (-undef)."""
    own = "\n".join(line for line in KERNELS.read_text().splitlines()
                    if not line.lstrip().startswith("#include"))
    out = subprocess.run([*compiler, "-E", "-P", "-undef", *defines, "-x", "c", "-"],
                         input=own, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("target", [["-D_MSC_VER=1930", "-D_M_X64=100", "-D_WIN64=1"],
                                    ["-D_MSC_VER=1930", "-D_M_ARM64=1", "-D_WIN64=1"],
                                    ["-D__STDC__=1"]], ids=["msvc-x64", "msvc-arm64", "plain-c"])
def test_the_kernels_use_no_gnu_extension_where_the_compiler_has_none(c_compiler, target):
    """What MSVC (and any C11 compiler) is given holds no __attribute__, __builtin_*, GNU
    statement or x86 intrinsic: the GNU spellings all sit behind __GNUC__ with a fallback."""
    seen = _preprocess(c_compiler, target)
    found = sorted(set(re.findall(r"__attribute__|__builtin_\w+|\b_mm\w+|__m256i|"
                                  r"__typeof__|\(\{", seen)))
    assert not found, f"GNU-only code in what {target[0]} compiles: {found}"
    assert "cascade_run_portable" in seen and "bitlen64" in seen  # the code is there


# Encode a quarter second of the demo clip at a level, decode it back, print the kernels' loop
# builds and the stream; with PLAIN set, the kernels built here replace the installed ones
# from the first import on.
ENCODE = """
import importlib.util, sys
PLAIN = {plain!r}
if PLAIN:
    spec = importlib.util.spec_from_file_location("vaelac._kernels", PLAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["vaelac._kernels"] = module
import numpy as np, vaelac
from vaelac import _backend
assert _backend.COMPILED and (not PLAIN or _backend.kernels is module), _backend.kernels
from vaelac.wav import read_wav
pcm, fmt = read_wav({demo!r})
pcm = pcm[: fmt.sample_rate // 4]
stream = vaelac.encode(pcm, fmt.sample_rate, bits=fmt.bits_per_sample, level={level})
assert np.array_equal(np.asarray(vaelac.decode(stream)[0]).reshape(pcm.shape), pcm)
print(_backend.kernels.model_loops()[1], stream.hex())
"""


def test_the_plain_c_build_encodes_as_the_gnu_build(c_compiler, tmp_path):
    """Built with -DVAELAC_PLAIN_C (the fallback of every GNU spelling, as MSVC builds it),
    the kernels give the installed build's stream for the same input, and decode it."""
    import shlex
    import sysconfig

    so = tmp_path / ("_kernels" + sysconfig.get_config_var("EXT_SUFFIX"))
    flags = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    build = subprocess.run([*c_compiler, "-DVAELAC_PLAIN_C", "-std=c11", "-O2",
                            "-ffp-contract=off", *flags, "-shared",
                            "-I" + sysconfig.get_paths()["include"], str(KERNELS), "-o", str(so)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    demo = str(REPO / "reference" / "data" / "demo.wav")
    for level in (1, 5):
        streams = []
        for plain in (str(so), ""):
            out = subprocess.run([sys.executable, "-c", ENCODE.format(plain=plain, demo=demo,
                                                                      level=level)],
                                 capture_output=True, text=True, timeout=300, cwd=tmp_path)
            assert out.returncode == 0, out.stderr[-2000:]
            loops, stream = out.stdout.rsplit(None, 1)
            streams.append(stream)
            if plain:
                assert loops == "('portable',)", loops  # no x86 paths, no GNU builtins
        assert streams[0] == streams[1], f"level {level}: the plain C build's stream differs"


# -- a wheel, installed where there is no compiler --------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """The wheel ``python -m build --wheel`` makes of a copy of this source tree, and what the
    build printed."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("'build' is not installed (python -m pip install build)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=IGNORED)
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "build", "--wheel", "-o", str(tmp / "dist"),
                          str(src)], capture_output=True, text=True, timeout=600)
    if out.returncode and "Could not find a version that satisfies" in out.stdout + out.stderr:
        pytest.skip("python -m build could not get setuptools for its isolated build "
                    "(no package index reachable)")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    print(f"wheel built in {time.monotonic() - start:.1f} s")
    wheels = list((tmp / "dist").glob("vaelac-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], out.stdout + out.stderr


def test_the_wheel_builds_without_a_setuptools_warning(built):
    """No deprecation (the license table stops building after 2027-02-18), no experimental
    configuration, no data folder missing from the packages."""
    warnings = [line.strip() for line in built[1].splitlines()
                if re.search(r"warning|deprecat|!!", line, re.I)
                and "byte-compiling is disabled" not in line]  # PYTHONDONTWRITEBYTECODE
    assert not warnings, "\n".join(warnings)


def test_the_wheel_installs_and_runs_the_main_job_without_a_compiler(built, tmp_path):
    """A plain virtual environment (it cannot see this checkout's editable vaelac), the wheel
    and its dependencies installed with no compiler on PATH and CC pointing nowhere; then the
    README's main job with the wheel's ``vaelac`` command (tests/wheel_smoke.py)."""
    wheel = built[0]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    env = _bare_env(tmp_path, str(bindir))
    assert shutil.which("cc", path=env["PATH"]) is None and \
        shutil.which("gcc", path=env["PATH"]) is None
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                              "-q", "--no-input", str(wheel)], capture_output=True, text=True,
                             timeout=600, env=env, cwd=tmp_path)
    if install.returncode and "No matching distribution found" in install.stderr:
        pytest.skip(f"the wheel's dependencies are not reachable: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-3000:]
    job = subprocess.run([str(python), "-I", str(REPO / "tests" / "wheel_smoke.py")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert job.returncode == 0, job.stdout + job.stderr
    assert "bit-exact, compiled kernels" in job.stdout and str(venv) in job.stdout, job.stdout
    print(job.stdout.strip())
