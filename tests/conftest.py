import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else
                                     "default"))

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for the _signals helper module


def _corpus() -> Path | None:
    candidates = [os.environ.get("VAELAC_CORPUS"), REPO.parent / "corpus" / "dev",
                  REPO / "corpus" / "dev"]
    for c in candidates:
        if c and Path(c, "MANIFEST.tsv").is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = _corpus()
    if path is None:
        pytest.skip("dev corpus absent: build it with "
                    "'bash benchmarks/corpus/build_dev_corpus.sh corpus/dev' "
                    "or set VAELAC_CORPUS")
    return path


@pytest.fixture(scope="session")
def c_compiler() -> list[str]:
    """The command of the C compiler Python was built with (the one that builds the kernels),
    for the C programs of conformance/; skips the test without one."""
    import shlex
    import shutil
    import sysconfig

    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    if not shutil.which(compiler[0]):
        pytest.skip(f"no C compiler ({compiler[0]}) to build conformance/'s C programs")
    return compiler
