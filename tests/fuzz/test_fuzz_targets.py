"""The CI pass of the fuzz targets: each runs TUNRELAY_FUZZ_RUNS inputs (default 20,000),
seeded with its committed corpus, in its own process, and must end without a finding.

Long campaigns (10^6 inputs and more) are run by hand: see README.md in this folder.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.fuzz.plant import PLANTED, planted_names
from tests.fuzz.run import ROOT, target_names
from tunrelay.wire.ipv4 import Ipv4Header

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")
RUNS = int(os.environ.get("TUNRELAY_FUZZ_RUNS", "20000"))
# A datapath input runs two whole relays (about 10 ms): a tenth of the inputs keeps its pass
# near 20 s, like the others; its long campaigns are run by hand.
_SHARE = {"datapath": 0.1}
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second", re.MULTILINE)


def fuzz(target, workdir, runs, *libfuzzer_args):
    return subprocess.run(
        [sys.executable, RUNNER, target, "--runs", str(runs), "--workdir", str(workdir), "--",
         *libfuzzer_args], capture_output=True, text=True, timeout=1200)


@pytest.mark.parametrize("target", target_names())
def test_target_runs_without_a_finding(target, tmp_path):
    runs = max(1, int(RUNS * _SHARE.get(target, 1)))
    result = fuzz(target, tmp_path, runs)
    report = (result.stdout + result.stderr)[-4000:]   # atheris prints a finding on stdout
    assert result.returncode == 0, report
    assert not list(tmp_path.glob("crash-*")), report
    done = _DONE.search(result.stderr)
    assert done and int(done.group(1)) >= runs, report


def test_an_exception_outside_the_documented_rejections_fails_the_pass(tmp_path):
    planted = tmp_path / "planted_target.py"
    planted.write_text(textwrap.dedent('''
        from tunrelay.wire.errors import MalformedPacket
        from tunrelay.wire.ipv4 import Ipv4Header

        REJECTIONS = (MalformedPacket,)
        COVERS = []

        def fuzz_one(data):
            header, payload = Ipv4Header.parse(data, verify_checksum=False)
            if payload[:2] == b"!?":
                raise IndexError("planted")
    '''))
    workdir = tmp_path / "work"
    (workdir / "corpus").mkdir(parents=True)
    seed = Ipv4Header(bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]), 17).emit(b"!x")
    (workdir / "corpus" / "seed").write_bytes(seed)
    result = fuzz(str(planted), workdir, 1_000_000, "-seed=1")
    assert result.returncode != 0, result.stderr[-2000:]
    assert "IndexError: planted" in result.stdout
    [crash] = workdir.glob("crash-*")
    assert Ipv4Header.parse(crash.read_bytes(), verify_checksum=False)[1][:2] == b"!?"


@pytest.mark.parametrize("name", planted_names())
def test_the_planted_bug_demo_still_applies(name):
    """plant.py's demos stay repeatable: each planted bug is for a target and applies to today's
    product code (when that code moves, regenerate the patch: see README.md, "Planted bugs")."""
    assert name in target_names()
    patch = os.path.join(PLANTED, name + ".patch")
    result = subprocess.run(["git", "apply", "--check", patch], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
