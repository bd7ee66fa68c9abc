"""Run the conformance suite under pytest: ``pytest --pyargs vaelac.conformance``.

Choose the implementation with environment variables (command templates with {in} and {out}):
``VAE_DECODER``, ``VAE_ENCODER``; ``VAE_QUICK=1`` for the one-minute run, ``VAE_SEED`` to
replay, ``VAE_CORPUS`` for a folder of WAV recordings. Without either variable the reference
CLI is tested.
"""

import os

import pytest

from vaelac.conformance import runner

DECODER = os.environ.get("VAE_DECODER")
ENCODER = os.environ.get("VAE_ENCODER")
if not (DECODER or ENCODER):
    DECODER, ENCODER = runner.REFERENCE_DECODER, runner.REFERENCE_ENCODER


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    seed = int(os.environ.get("VAE_SEED", "0")) or None
    return runner.run(DECODER, ENCODER, quick=bool(os.environ.get("VAE_QUICK")), seed=seed,
                      out_dir=tmp_path_factory.mktemp("vae-conformance"),
                      corpus=os.environ.get("VAE_CORPUS") or None, log=print)


def test_vectors_decode_or_are_rejected_as_the_manifest_says(report):
    failed = [f"{c.name}: {c.reason}" for c in report.cases
              if c.group.startswith("vectors") and not c.passed]
    assert not failed, "\n".join(failed)


def test_round_trips(report):
    failed = [f"{c.name}: {c.reason}\n  reproduce: {c.reproduce}" for c in report.cases
              if c.group == "roundtrip" and not c.passed]
    assert not failed, f"seed {report.seed}\n" + "\n".join(failed)


def test_damaged_streams_are_rejected_without_output(report):
    failed = [f"{c.name}: {c.reason}\n  reproduce: {c.reproduce}" for c in report.cases
              if c.group == "faulty" and not c.passed]
    assert not failed, f"seed {report.seed}\n" + "\n".join(failed)
