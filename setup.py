"""Builds the C kernels (vaelac._kernels), or stops with one line saying what is missing.

The package's metadata lives in pyproject.toml; this file only declares the extension, with a
build_ext that first checks that a C compiler and the Python development headers are there (a
source install needs both; a wheel needs neither: see [tool.cibuildwheel]), and gives MSVC its
own spelling of the compile options.
"""

import os
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

NEEDS = ("vaelac needs a C compiler and the Python development headers (python3-dev) to build "
         "from source; install them or install a wheel")

KERNELS = Extension("vaelac._kernels", sources=["reference/_kernels.c"],
                    extra_compile_args=["-O3", "-funroll-loops", "-ffp-contract=off"])
# the same for MSVC (the Windows wheels): no contraction of a * b + c into an FMA either
MSVC_COMPILE_ARGS = ["/O2", "/fp:precise"]


def _why(log: str, error: Exception, command: str) -> str:
    """The compiler's first error line, else the exception's (e.g. the compiler did not run)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    said = [line for line in lines if "error" in line.lower() and not line.startswith(command)]
    return (said[0] if said else str(error).strip().splitlines()[-1])[:200]


class BuildExt(build_ext):
    def _missing(self) -> str:
        """What keeps this machine from building the kernels, or "" when nothing does."""
        include = sysconfig.get_paths()["include"]
        dirs = [include, *(self.include_dirs or [])]
        if not any(os.path.isfile(os.path.join(d, "Python.h")) for d in dirs):
            return f"no Python.h in {include}"
        with tempfile.TemporaryDirectory(prefix="vaelac-probe-") as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("#include <Python.h>\nint vaelac_probe(void) { return 0; }\n")
            log = os.path.join(tmp, "log")
            saved = [os.dup(1), os.dup(2)]  # the compiler's own messages go to the log
            try:
                with open(log, "w") as out:
                    os.dup2(out.fileno(), 1)
                    os.dup2(out.fileno(), 2)
                    try:
                        self.compiler.compile([src], output_dir=tmp, include_dirs=dirs)
                        return ""
                    except Exception as exc:  # noqa: BLE001 - CompileError, PlatformError, OSError
                        error = exc
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
            name = (getattr(self.compiler, "compiler_so", None) or [self.compiler.compiler_type])[0]
            with open(log, errors="replace") as f:
                detail = _why(f.read(), error, name)
        if "No such file or directory" in detail and "Python.h" not in detail:
            return f"no C compiler: {name} not found"
        return f"the C compiler {name} cannot build a file that includes Python.h: {detail}"

    def build_extensions(self):
        missing = self._missing()
        if missing:
            raise SystemExit(f"error: {NEEDS} ({missing})")
        if self.compiler.compiler_type == "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = list(MSVC_COMPILE_ARGS)
        super().build_extensions()


if __name__ == "__main__":  # as setuptools runs it; tests import BuildExt
    setup(ext_modules=[KERNELS], cmdclass={"build_ext": BuildExt})
