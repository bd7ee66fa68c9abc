"""The long-stream check (tests/fuzz/long_stream.py) scaled down: 10 s and 60 s of stereo 48 kHz
encode and decode exactly, each phase in its own process, and six times the audio costs no more
memory (the 3-hour figure in the issue comes from the same script: --hours 3)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "fuzz" / "long_stream.py"


def _run(seconds, tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, "--seconds", str(seconds), "--json", "--path",
                        tmp_path / f"{seconds}.vae"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout)


def test_memory_does_not_grow_with_the_stream(tmp_path):
    short, long = _run(10, tmp_path), _run(60, tmp_path)
    assert long["decode"]["samples"] == 60 * 48000
    for phase in ("encode", "decode"):
        assert long[phase]["peak_rss_mb"] < 200, long
        # 50 s more of stereo audio is 9.6 MB as int16 and 38 MB as int64: none of it is held
        assert long[phase]["peak_rss_mb"] - short[phase]["peak_rss_mb"] < 8, (short, long)
    assert not (tmp_path / "60.vae").exists()  # removed unless --keep
