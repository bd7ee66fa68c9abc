"""Where outputs go: a regular file is replaced atomically (only with -f / overwrite=True); a
character device or a FIFO is written through, as flac does, with or without -f; a symbolic
link's target is replaced and the link stays a link; a dangling link, a directory and a missing
folder are refused with one line that names the output."""

import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import vaelac
from _signals import make_signal

VAELAC = [sys.executable, "-m", "vaelac"]
POSIX = pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and symlinks: POSIX")


def run(*args, **kw):
    return subprocess.run(VAELAC + [str(a) for a in args], capture_output=True, text=True, **kw)


@pytest.fixture
def wav(tmp_path):
    from vaelac.wav import write_wav

    path = tmp_path / "in.wav"
    write_wav(path, make_signal("walk", 6000, 2, 16, seed=3), 44100, 16)
    return path


@pytest.fixture
def stream(wav, tmp_path):
    """The bytes `vaelac encode in.wav` writes (encoding is deterministic)."""
    out = tmp_path / "reference.vae"
    assert run("encode", wav, "-o", out).returncode == 0
    return out.read_bytes()


def _char_device(tmp_path):
    """A character device to write to: a null device made in tmp_path (root), else /dev/null,
    used only when the code under test already writes through it, so that a failing test can
    never replace the real /dev/null."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(node, "wb") as f:  # a nodev mount refuses to open it
            f.write(b"probe")
        return node
    except (OSError, AttributeError):
        pass
    from vaelac._atomic import writes_through

    assert writes_through("/dev/null"), "atomic_output would replace /dev/null"
    return "/dev/null"


@POSIX
@pytest.mark.parametrize("force", [False, True])
def test_a_character_device_is_written_through_not_replaced(tmp_path, wav, force):
    dev = _char_device(tmp_path)
    r = run("encode", wav, "-o", dev, *(["-f"] if force else []))
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat(dev).st_mode)
    assert not [p for p in os.listdir(os.path.dirname(os.path.abspath(dev)))
                if p.startswith(".vaelac-")]


def _encode_into_fifo(args):
    """Run ``vaelac`` writing into a FIFO, reading it meanwhile; (result, bytes read). Never
    blocks: the FIFO is opened non-blocking before the command starts."""
    fifo = args[args.index("-o") + 1]
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proc = subprocess.Popen(VAELAC + [str(a) for a in args], stderr=subprocess.PIPE,
                                text=True)
        chunks, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:  # a writer holds the FIFO open: nothing to read yet
                chunk = None
            if chunk:
                chunks.append(chunk)
            elif chunk == b"" and proc.poll() is not None:  # no writer left, command ended
                break
            else:
                time.sleep(0.01)
        err = proc.communicate(timeout=60)[1]
        return proc.returncode, err, b"".join(chunks)
    finally:
        os.close(fd)


@POSIX
@pytest.mark.parametrize("force", [False, True])
def test_a_fifo_is_written_through_not_replaced(tmp_path, wav, stream, force):
    fifo = tmp_path / "pipe.vae"
    os.mkfifo(fifo)
    rc, err, got = _encode_into_fifo(["encode", wav, "-o", fifo] + (["-f"] if force else []))
    assert rc == 0, err
    assert got == stream
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@POSIX
def test_a_symlink_s_target_is_replaced_and_the_link_stays(tmp_path, wav, stream):
    target, link = tmp_path / "real.vae", tmp_path / "link.vae"
    target.write_bytes(b"precious")
    link.symlink_to(target.name)
    r = run("encode", wav, "-o", link)
    assert r.returncode == 1 and target.read_bytes() == b"precious"
    assert r.stderr.strip() == f"vaelac: {wav}: {link} exists (use -f to overwrite)"
    r = run("encode", wav, "-o", link, "-f", "-V")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == target.name
    assert target.read_bytes() == stream
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in.wav", "reference.vae", "real.vae", "link.vae"])


@POSIX
def test_the_api_and_decode_replace_a_symlink_s_target_too(tmp_path, stream):
    target, link = tmp_path / "real.vae", tmp_path / "link.vae"
    target.write_bytes(b"old")
    link.symlink_to(target)
    data = make_signal("sine", 500, 1, 16, seed=1)
    vaelac.write(link, data, 8000, bits=16)
    assert link.is_symlink() and np.array_equal(np.ravel(vaelac.read(target)[0]), np.ravel(data))

    (tmp_path / "s.vae").write_bytes(stream)
    wav_target, wav_link = tmp_path / "real.wav", tmp_path / "link.wav"
    wav_target.write_bytes(b"old")
    wav_link.symlink_to(wav_target)
    assert run("decode", tmp_path / "s.vae", "-o", wav_link, "-f").returncode == 0
    assert wav_link.is_symlink() and wav_target.read_bytes()[:4] == b"RIFF"


@POSIX
@pytest.mark.parametrize("force", [False, True])
def test_a_dangling_symlink_is_refused_with_one_line(tmp_path, wav, force):
    link = tmp_path / "link.vae"
    link.symlink_to("nowhere.vae")
    r = run("encode", wav, "-o", link, *(["-f"] if force else []))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"vaelac: {wav}: {link} is a symbolic link to nowhere.vae, which does not exist "
        "(vaelac does not write through a dangling link)"]
    assert link.is_symlink() and not (tmp_path / "nowhere.vae").exists()


def test_a_directory_as_output_is_named(tmp_path, wav):
    (tmp_path / "d.vae").mkdir()
    r = run("encode", wav, "-o", tmp_path / "d.vae", "-f")
    assert r.returncode == 1
    assert r.stderr.strip() == f"vaelac: {wav}: {tmp_path / 'd.vae'} is a directory"


def test_a_missing_output_folder_is_named_not_the_input(tmp_path, wav, stream):
    out = tmp_path / "no" / "dir" / "a.vae"
    r = run("encode", wav, "-o", out)
    assert r.returncode == 1
    assert r.stderr.strip() == (f"vaelac: {wav}: cannot write {out}: "
                                f"no folder {tmp_path / 'no' / 'dir'}")
    (tmp_path / "s.vae").write_bytes(stream)
    r = run("decode", tmp_path / "s.vae", "-o", tmp_path / "no" / "b.wav")
    assert r.returncode == 1 and f"cannot write {tmp_path / 'no' / 'b.wav'}" in r.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes in a read-only folder")
def test_an_unwritable_output_folder_names_the_output(tmp_path, wav):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        r = run("encode", wav, "-o", folder / "a.vae")
    finally:
        folder.chmod(0o755)
    assert r.returncode == 1
    assert r.stderr.strip() == f"vaelac: {wav}: {folder / 'a.vae'}: Permission denied"


def test_train_refuses_an_existing_model_without_f_before_training(tmp_path, wav):
    keep = tmp_path / "keep.vaem"
    keep.write_bytes(b"precious")
    started = time.monotonic()
    r = run("train", wav, "-o", keep)
    assert r.returncode == 1 and keep.read_bytes() == b"precious"
    assert r.stderr.strip() == f"vaelac train: {keep} exists (use -f to overwrite)"
    assert time.monotonic() - started < 30  # refused before any training
    # -f gets past the check: what stops it here is the data, not the existing file
    r = run("train", tmp_path / "missing.wav", "-o", keep, "-f")
    assert r.returncode != 0 and "exists" not in r.stderr
    assert keep.read_bytes() == b"precious"


def test_api_refusal_to_overwrite_names_the_argument_not_a_cli_flag(tmp_path):
    (tmp_path / "y.vae").write_bytes(b"x")
    with pytest.raises(vaelac.OutputExistsError) as caught:
        vaelac.write(tmp_path / "y.vae", np.zeros(10, np.int16), 8000, overwrite=False)
    assert "pass overwrite=True" in str(caught.value) and "-f" not in str(caught.value)


@POSIX
def test_pydub_export_writes_through_a_device_and_keeps_a_symlink(tmp_path):
    pydub = pytest.importorskip("pydub", reason="pydub is not installed (vaelac[pydub])")
    from vaelac.plugin.pydub import export

    seg = pydub.AudioSegment(make_signal("sine", 400, 1, 16, seed=2).astype("<i2").tobytes(),
                             frame_rate=8000, sample_width=2, channels=1)
    dev = _char_device(tmp_path)
    export(seg, dev).close()
    assert stat.S_ISCHR(os.stat(dev).st_mode)
    target, link = tmp_path / "real.vae", tmp_path / "link.vae"
    target.write_bytes(b"old")
    link.symlink_to(target)
    export(seg, link).close()
    assert link.is_symlink() and target.read_bytes()[:4] == b"\x89VAE"
