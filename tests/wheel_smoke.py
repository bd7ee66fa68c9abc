"""The README's main job, run against an installed wheel: encode the demo clip with -V, decode it
back, compare the bytes. Exits 0 and prints one line when everything holds.

Run by cibuildwheel on every wheel it builds ([tool.cibuildwheel] test-command in
pyproject.toml) and by tests/test_packaging.py on the wheel built here. It checks that vaelac is
the installed one (not a source tree), that its compiled kernels load (not the slow pure-Python
fallback), and uses the ``vaelac`` command the wheel installed.
"""

import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path


def main() -> int:
    import vaelac
    from vaelac import _backend

    here = Path(vaelac.__file__).resolve().parent
    if "site-packages" not in here.parts:
        print(f"wheel smoke: vaelac imported from {here}, not from an installed wheel")
        return 1
    if not _backend.COMPILED:
        print("wheel smoke: the wheel's compiled kernels did not load (pure-Python fallback)")
        return 1
    cli = shutil.which("vaelac")
    if not cli:
        print("wheel smoke: no 'vaelac' command on PATH")
        return 1
    with resources.as_file(resources.files("vaelac") / "data" / "demo.wav") as demo, \
            tempfile.TemporaryDirectory(prefix="vaelac-smoke-") as tmp:
        vae, wav = Path(tmp, "demo.vae"), Path(tmp, "demo.wav")
        for args in (["encode", str(demo), "-o", str(vae), "-f", "-V"],
                     ["decode", str(vae), "-o", str(wav), "-f"]):
            done = subprocess.run([cli, *args], capture_output=True, text=True)
            if done.returncode:
                print(f"wheel smoke: vaelac {args[0]} failed ({done.returncode}): "
                      f"{done.stderr.strip()}")
                return 1
        if wav.read_bytes() != Path(demo).read_bytes():
            print("wheel smoke: the decoded WAV differs from the demo clip")
            return 1
        print(f"wheel smoke: {demo.name} {demo.stat().st_size} bytes -> {vae.stat().st_size} "
              f"bytes .vae -> bit-exact, compiled kernels ({_backend.kernels.__name__}), "
              f"vaelac {vaelac.__version__} from {here}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
