"""Test hosts as network namespaces, relays as real ``twistd`` processes, and condition waits.

Every namespace and process made here is registered with a ``Lab`` that the fixture tears
down even when the test fails. Names carry the pid so parallel or crashed runs never
collide. Only documentation addresses are used (192.0.2.0/24, 198.51.100.0/24,
2001:db8::/32).
"""

import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import yaml

_counter = itertools.count()
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = shutil.which("twistd") or os.path.join(os.path.dirname(sys.executable), "twistd")


class CommandFailed(AssertionError):
    pass


def run(*command, check=True, timeout=60, input=None):
    result = subprocess.run(command, capture_output=True, text=input is None or isinstance(input, str),
                            timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise CommandFailed("%s failed (%d): %s%s" % (" ".join(command), result.returncode, result.stdout, result.stderr))
    return result


def read_log(path):
    """A log file's text so far ("" before the process has created it)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read()
    except FileNotFoundError:
        return ""


def wait_for(condition, timeout=20.0, interval=0.05, message="condition"):
    """Poll ``condition`` until it returns a true value; fail with ``message`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, message))
        time.sleep(interval)


class Host:
    def __init__(self, lab, name):
        self.lab = lab
        self.name = name
        run("ip", "netns", "add", name)
        self.ip("link", "set", "lo", "up")

    def ip(self, *arguments, check=True):
        return run("ip", "-n", self.name, *arguments, check=check)

    def exec(self, *command, check=True, timeout=60, input=None):
        return run("ip", "netns", "exec", self.name, *command, check=check, timeout=timeout, input=input)

    def exec_to(self, command, stdin, stdout, timeout=60):
        """Run a command with files as stdin and stdout (for payloads too big for memory pipes)."""
        result = subprocess.run(("ip", "netns", "exec", self.name) + tuple(command), stdin=stdin, stdout=stdout,
                                stderr=subprocess.PIPE, timeout=timeout)
        if result.returncode != 0:
            raise CommandFailed("%s failed (%d): %s" % (" ".join(command), result.returncode, result.stderr))
        return result

    def popen(self, *command, **kwargs):
        process = subprocess.Popen(("ip", "netns", "exec", self.name) + command, **kwargs)
        self.lab.processes.append(process)
        return process

    def lose_underlay_packets(self, percent):
        """Drop ``percent``% of the packets arriving on u0 (nftables numgen, counted).

        The veth first stops keeping GSO batches whole (TSO and UDP segmentation off on this
        end; the other end does the same), so that a drop takes one packet, as on a real wire,
        not a whole batch of them."""
        self.exec("ethtool", "-K", "u0", "tso", "off", "gso", "off", "tx-udp-segmentation", "off")
        self.exec("nft", "add", "table", "netdev", "lossy")
        self.exec("nft", "add", "chain", "netdev", "lossy", "in", "{ type filter hook ingress device u0 priority 0; }")
        self.exec("nft", "add", "rule", "netdev", "lossy", "in", "numgen", "random", "mod", "100", "<", str(percent),
                  "counter", "drop")

    def underlay_packets_lost(self):
        listing = self.exec("nft", "list", "chain", "netdev", "lossy", "in").stdout
        return int(re.search(r"counter packets (\d+)", listing).group(1))

    def has_link(self, name):
        return self.ip("link", "show", name, check=False).returncode == 0

    def ping(self, address, count=3, timeout=20.0):
        """Wait until ``address`` answers, then require ``count`` answers in a row."""
        family = "-6" if ":" in address else "-4"
        wait_for(lambda: self.exec("ping", family, "-c", "1", "-W", "1", address, check=False).returncode == 0,
                 timeout, message="%s to answer ping from %s" % (address, self.name))
        result = self.exec("ping", family, "-c", str(count), "-i", "0.2", "-W", "2", address, check=False)
        assert result.returncode == 0 and " 0% packet loss" in result.stdout, result.stdout


class Relay:
    """A ``twistd -n tunrelay`` process in a namespace, with its config and log in tmp."""

    def __init__(self, host, directory, config, extra_twistd=()):
        self.host = host
        index = next(_counter)
        self.config_path = os.path.join(directory, "%s-%d.yaml" % (host.name, index))
        self.log_path = os.path.join(directory, "%s-%d.log" % (host.name, index))
        config.setdefault("control_socket", os.path.join(directory, "%s-%d.sock" % (host.name, index)))
        if not config.get("plaintext"):
            # Namespaces share /var/run/wireguard: a name unique to this run and relay keeps two
            # relays whose devices are both tr0 apart, and is what wg(8) calls this relay.
            config.setdefault("uapi_socket", "/var/run/wireguard/%s.sock" % unique_name("wr", index))
        self.config = config
        if config.get("uapi_socket"):
            host.lab.sockets.append(config["uapi_socket"])
        with open(self.config_path, "w") as stream:
            yaml.safe_dump(config, stream)
        # The checkout under test comes first on the path, so a stale installed copy can't
        # stand in for it (twisted.plugins also scans <path>/twisted/plugins).
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [REPOSITORY, os.environ.get("PYTHONPATH")])))
        self.process = host.popen(TWISTD, "-n", "--pidfile=", "--logfile", self.log_path, *extra_twistd,
                                  "tunrelay", "-c", self.config_path, env=environment,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for(lambda: "relay up" in self.log() or self.process.poll() is not None, 20,
                 message="relay in %s to start" % host.name)
        if self.process.poll() is not None:
            raise AssertionError("relay in %s exited (%s):\n%s\n%s" % (
                host.name, self.process.returncode, self.process.stdout.read().decode(), self.log()))

    @property
    def device(self):
        return self.config["interface"]["name"]

    def log(self):
        return read_log(self.log_path)

    def wait_log(self, text, timeout=20.0):
        wait_for(lambda: text in self.log(), timeout, message="%r in the log of %s" % (text, self.host.name))

    @property
    def wg_name(self):
        """The name wg(8) knows this relay by: its UAPI socket's file name."""
        return os.path.basename(self.config["uapi_socket"])[:-len(".sock")]

    def wg(self, *arguments, check=True, input=None):
        """Run the real ``wg`` against this relay (``{}`` in ``arguments`` is its name)."""
        return self.host.exec("wg", *(argument.replace("{}", self.wg_name) for argument in arguments),
                              check=check, input=input)

    def rewrite(self, config):
        """Replace the config file (for reload tests), keeping the harness's control and UAPI sockets."""
        if isinstance(config, dict):
            config = dict(config, control_socket=self.config["control_socket"])
            if "uapi_socket" in self.config:
                config["uapi_socket"] = self.config["uapi_socket"]
        with open(self.config_path, "w") as stream:
            stream.write(config if isinstance(config, str) else yaml.safe_dump(config))

    def tool(self, *arguments, check=False):
        """Run ``tunrelay ARGS`` from the checkout under test, in the relay's namespace."""
        environment = dict(os.environ, PYTHONPATH=REPOSITORY)
        return subprocess.run(["ip", "netns", "exec", self.host.name, sys.executable, "-m", "tunrelay.cli",
                               *arguments], capture_output=True, text=True, timeout=30, env=environment,
                              check=check)

    def status(self):
        """``tunrelay status --json`` of this relay, parsed."""
        result = self.tool("status", "-s", self.config["control_socket"], "--json")
        if result.returncode != 0:
            raise CommandFailed("tunrelay status failed (%d): %s%s" % (result.returncode, result.stdout, result.stderr))
        return json.loads(result.stdout)

    def effective_uid(self):
        """The uid twistd runs as now (``ip netns exec`` execs twistd, so the pid is twistd's)."""
        with open("/proc/%d/status" % self.process.pid) as status:
            for line in status:
                if line.startswith("Uid:"):
                    return int(line.split()[2])
        raise AssertionError("no Uid line for pid %d" % self.process.pid)

    def stop(self, timeout=15.0):
        """SIGTERM and wait; twistd re-raises the signal after a clean shutdown, so -15 is normal."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)
        return self.process.returncode


def unique_name(prefix, index=None):
    """A device or socket name unique to this test run, at most 15 characters (IFNAMSIZ)."""
    name = "%s%d%d" % (prefix, os.getpid() % 100000, next(_counter) if index is None else index)
    assert len(name) <= 15, name
    return name


class Lab:
    """Owns namespaces, processes and UAPI sockets; ``close`` removes them all, whatever happened."""

    def __init__(self, directory, prefix="tr"):
        self.directory = str(directory)
        self.prefix = "%s%d%d" % (prefix, os.getpid() % 100000, next(_counter))
        self.hosts = []
        self.processes = []
        self.sockets = []          # /var/run/wireguard paths, shared by every namespace

    def host(self, suffix):
        host = Host(self, "%s%s" % (self.prefix, suffix))
        self.hosts.append(host)
        return host

    def link(self, a, b, a_name="u0", b_name="u0", a_mac=None, b_mac=None):
        """A veth pair between two hosts (or within one when a is b)."""
        temporary_a, temporary_b = "%sx%d" % (self.prefix, next(_counter)), "%sy%d" % (self.prefix, next(_counter))
        run("ip", "link", "add", temporary_a, "type", "veth", "peer", "name", temporary_b)
        for temporary, host, name, mac in ((temporary_a, a, a_name, a_mac), (temporary_b, b, b_name, b_mac)):
            run("ip", "link", "set", temporary, "netns", host.name)
            host.ip("link", "set", temporary, "name", name)
            if mac:
                host.ip("link", "set", name, "address", mac)
            host.ip("link", "set", name, "up")

    def underlay(self, ipv6=True):
        """Two hosts on one veth: a=192.0.2.1/2001:db8::1, b=192.0.2.2/2001:db8::2, MACs 02:..:01/02."""
        a, b = self.host("a"), self.host("b")
        self.link(a, b, a_mac="02:00:00:00:00:01", b_mac="02:00:00:00:00:02")
        for host, last in ((a, 1), (b, 2)):
            host.ip("addr", "add", "192.0.2.%d/24" % last, "dev", "u0")
            if ipv6:
                host.ip("addr", "add", "2001:db8::%d/64" % last, "dev", "u0", "nodad")
        return a, b

    def third_host(self, a, suffix="c"):
        """A host c joined to ``a`` by a second veth: a=198.18.0.1 (on u1), c=198.18.0.2 (on u0)."""
        c = self.host(suffix)
        self.link(a, c, a_name="u1", b_name="u0")
        a.ip("addr", "add", "198.18.0.1/24", "dev", "u1")
        c.ip("addr", "add", "198.18.0.2/24", "dev", "u0")
        return c

    def relay(self, host, config, extra_twistd=()):
        return Relay(host, self.directory, config, extra_twistd)

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for host in self.hosts:
            pids = run("ip", "netns", "pids", host.name, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "delete", host.name, check=False)
        for path in self.sockets:
            if os.path.exists(path):   # left by a process that was killed
                os.unlink(path)


def kernel_counters(host, *names):
    """{name: value} of the host's kernel SNMP counters (nstat, absolute since the namespace began)."""
    fields = host.exec("nstat", "-az", *names, check=False).stdout.split()
    return {name: int(fields[index + 1]) for index, name in enumerate(fields) if name in names}


def checksum_errors(host):
    """TCP and UDP checksum errors the host's kernel has counted (nstat)."""
    return sum(kernel_counters(host, "TcpInCsumErrors", "UdpInCsumErrors").values())


def random_file(directory, size):
    path = os.path.join(str(directory), "payload-%d.bin" % size)
    with open(path, "wb") as stream:
        stream.write(os.urandom(size))
    return path


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def transfer(sender, receiver, address, directory, size=20 * 1000 * 1000, port=5001, timeout=120):
    """Send ``size`` random bytes with nc from sender to receiver:address; return both sha256s."""
    source = random_file(directory, size)
    received = os.path.join(str(directory), "received-%d-%d.bin" % (port, next(_counter)))
    with open(received, "wb") as output:
        listener = receiver.popen("nc", "-l", "-N", address, str(port), stdout=output, stderr=subprocess.PIPE)
        wait_for(lambda: _listening(receiver, port), 10, message="nc listening on %s:%d" % (address, port))
        with open(source, "rb") as payload:
            sender.exec("nc", "-N", "-w", "30", address, str(port), input=payload.read(), timeout=timeout)
        listener.wait(timeout)
    return sha256_of(source), sha256_of(received)


def _listening(host, port):
    return (":%d " % port) in host.exec("ss", "-ltnH", check=False).stdout
