"""Fixtures for namespace tests.

These tests need root, /dev/net/tun and the Debian tools named in .ci/run. Where those are
missing they skip, unless TUNRELAY_REQUIRE_NETNS=1 (set by .ci/run): then "cannot run here"
is a failure, so CI can never pass by skipping.
"""

import os
import shutil
import subprocess

import pytest

from .netns import Lab

REQUIRED_TOOLS = ("ip", "ping", "nc", "ss", "twistd", "tcpdump", "curl", "ethtool", "nstat")


def _cannot_run_reason():
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return "missing tools: " + ", ".join(missing)
    probe = "trprobe%d" % os.getpid()
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


_REASON = _cannot_run_reason()


def require(condition_reason):
    """Skip (or fail under TUNRELAY_REQUIRE_NETNS=1) when ``condition_reason`` is not None."""
    if condition_reason is None:
        return
    if os.environ.get("TUNRELAY_REQUIRE_NETNS") == "1":
        pytest.fail("namespace test cannot run here: %s (TUNRELAY_REQUIRE_NETNS=1)" % condition_reason)
    pytest.skip(condition_reason)


def require_tool(tool):
    require(None if shutil.which(tool) else "%s is not installed" % tool)


@pytest.fixture
def lab(tmp_path):
    require(_REASON)
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
