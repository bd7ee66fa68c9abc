"""The README is for users, and what it tells them to run is what runs (issue 21, item 14)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_the_readme_is_a_users_page_not_a_development_log():
    assert len(README.splitlines()) <= 250
    for pattern in (r"\bstop \d+", r"\bissue \d+", r"\brun \d+\b", r"\bbench run\b"):
        assert not re.search(pattern, README, flags=re.I), pattern


def test_the_readme_and_tests_point_only_at_what_a_clone_has():
    texts = {"README.md": README}
    texts.update({str(p.relative_to(REPO)): p.read_text() for p in (REPO / "tests").glob("*.py")
                  if p.name != "test_docs.py"})
    for name, text in texts.items():
        assert "../shared" not in text and "../corpus" not in text, name
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in link:
            assert (REPO / link).exists(), link


def test_the_first_two_commands_and_ci():
    install, tests = _code_blocks(README)[:2]
    assert install.startswith("python3 -m pip install . && ") and "mktemp -d" in install
    assert "vaelac encode reference/data/demo.wav" in install and "cmp " in install
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == tests.strip()


def test_research_probes_and_build_outputs_stay_out_of_the_tests_and_of_git():
    assert not (REPO / "tests" / "explore").exists()
    assert (REPO / "tools" / "research" / "level_table.py").is_file()
    assert (REPO / "benchmarks" / "codec_bench.py").is_file()
    for built in ("conformance/c-decoder/vaedec", "conformance/c-encoder/vaeenc"):
        r = subprocess.run(["git", "check-ignore", "-q", built], cwd=REPO)
        assert r.returncode == 0, f"{built} is not ignored by git"


def test_help_lists_the_levels_and_the_progress_display():
    r = subprocess.run([sys.executable, "-m", "vaelac", "encode", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    assert "-0 ... -8" in r.stdout and "progress" in r.stdout
