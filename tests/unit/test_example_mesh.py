"""etc/examples/mesh renders into four valid relay configs whose peers hold each other's keys."""

import os
import stat
import subprocess
import sys

from tunrelay.config import load
from tunrelay.crypto import keys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPOSITORY, "etc", "examples", "mesh")
NEIGHBOURS = {1: {2, 3, 4}, 2: {1, 3}, 3: {1, 2, 4}, 4: {1, 3}}   # ring 1-2-3-4-1 plus 1-3


def test_make_keys_renders_consistent_configs_with_private_key_files(tmp_path):
    subprocess.run(["sh", os.path.join(EXAMPLE, "make-keys.sh"), str(tmp_path)], check=True, capture_output=True,
                   env=dict(os.environ, TUNRELAY="%s -m tunrelay.cli" % sys.executable, PYTHONPATH=REPOSITORY))
    public = {}
    for site in NEIGHBOURS:
        key_path = tmp_path / ("site%d.key" % site)
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        public[site] = keys.encode_key(keys.public_key(keys.decode_key(key_path.read_text().strip())))
    for site, neighbours in NEIGHBOURS.items():
        config = load(str(tmp_path / ("site%d.yaml" % site)))
        assert [str(address) for address in config.interface.addresses] == ["198.51.100.%d/24" % site]
        assert not config.forward_between_peers
        peers = {int(peer.name[len("site"):]): peer for peer in config.peers}
        assert set(peers) == neighbours
        for other, peer in peers.items():
            assert peer.public_key == public[other]
            assert [str(network) for network in peer.allowed_ips] == [
                "198.51.100.%d/32" % other, "224.0.0.5/32", "224.0.0.6/32"]
