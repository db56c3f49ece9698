"""Routing daemons in namespaces: BIRD 2 and FRR, each with its own config, sockets, pid files
and logs under the test's tmp directory, so that any number run side by side without systemd.

Both run in the foreground as children of the Lab, so ``Lab.close`` stops them (and kills
whatever is left in a namespace before deleting it).

FRR without systemd or watchfrr: each daemon (zebra first) gets ``--vty_socket DIR`` (its
``<daemon>.vty`` socket there), ``-z DIR/zserv.api`` (the zebra API socket), ``-i`` a pid file,
``-P 0`` (no TCP vty), ``--log file:...`` and ``-f /dev/null`` (so no daemon reads the host's
/etc/frr); bfdd also gets ``--bfdctl``. The integrated config is then pushed to all of them
with ``vtysh --vty_socket DIR -f frr.conf``, exactly as ``vtysh -b`` does at boot.
"""

import os
import subprocess

from .netns import read_log, wait_for

FRR_DAEMONS = "/usr/lib/frr"


def _started(process, answers, what, log):
    wait_for(lambda: answers() or process.poll() is not None, 20, message=what)
    if process.poll() is not None:
        raise AssertionError("%s: exited (%s):\n%s\n%s" % (what, process.returncode, process.stdout.read().decode(),
                                                           log()))


class Bird:
    """``bird -f`` in a namespace with the given config text (a ``log`` line to tmp is added)."""

    def __init__(self, host, directory, config_text):
        self.host = host
        self.socket = os.path.join(directory, "bird-%s.ctl" % host.name)
        self.log_path = os.path.join(directory, "bird-%s.log" % host.name)
        self.config_path = os.path.join(directory, "bird-%s.conf" % host.name)
        with open(self.config_path, "w") as stream:
            stream.write('log "%s" all;\n%s' % (self.log_path, config_text))
        host.exec("bird", "-p", "-c", self.config_path)  # parse only: a config error fails here, clearly
        self.process = host.popen("bird", "-f", "-c", self.config_path, "-s", self.socket,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _started(self.process, self._answers, "bird in %s to answer on %s" % (host.name, self.socket), self.log)

    def stop(self):
        """SIGTERM and wait: BIRD withdraws its routes from the kernel on the way out."""
        self.process.terminate()
        self.process.wait(10)

    def birdc(self, *command):
        return self.host.exec("birdc", "-s", self.socket, *command, check=False, timeout=10)

    def _answers(self):
        return os.path.exists(self.socket) and self.birdc("show", "status").returncode == 0

    def ospf_full_neighbours(self):
        """Router ids of OSPF neighbours in state Full."""
        rows = [line.split() for line in self.birdc("show", "ospf", "neighbors").stdout.splitlines()]
        return {row[0] for row in rows if len(row) > 2 and row[2].startswith("Full")}

    def bfd_up_peers(self):
        rows = [line.split() for line in self.birdc("show", "bfd", "sessions").stdout.splitlines()]
        return {row[0] for row in rows if len(row) > 2 and row[2] == "Up"}

    def log(self):
        return read_log(self.log_path)

    def diagnostics(self):
        return "bird %s:\n%s\n%s\n%s" % (self.host.name, self.birdc("show", "ospf", "neighbors").stdout,
                                         self.birdc("show", "bfd", "sessions").stdout, self.log()[-3000:])


class Frr:
    """FRR daemons (zebra plus ``daemons``) in a namespace, configured with ``config_text``."""

    def __init__(self, host, directory, config_text, daemons=("ospfd", "bfdd")):
        self.host = host
        self.directory = os.path.join(directory, "frr-%s" % host.name)
        os.makedirs(self.directory)
        self.config_path = os.path.join(self.directory, "frr.conf")
        with open(self.config_path, "w") as stream:
            stream.write(config_text)
        zserv = os.path.join(self.directory, "zserv.api")
        self.daemons = ("zebra",) + tuple(daemons)
        for daemon in self.daemons:
            arguments = ["--vty_socket", self.directory, "-z", zserv, "-i", self._path(daemon, "pid"),
                         "-u", "root", "-g", "frrvty", "-P", "0", "-f", "/dev/null",
                         "--log", "file:" + self._path(daemon, "log")]
            if daemon == "bfdd":
                arguments += ["--bfdctl", self._path(daemon, "ctl")]
            process = host.popen(os.path.join(FRR_DAEMONS, daemon), *arguments,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            _started(process, lambda: os.path.exists(self._path(daemon, "vty")),
                     "%s in %s to open its vty socket" % (daemon, host.name),
                     lambda: read_log(self._path(daemon, "log")))
        result = self.vtysh_file(self.config_path)
        assert result.returncode == 0, "vtysh -f %s: %s%s" % (self.config_path, result.stdout, result.stderr)

    def _path(self, daemon, suffix):
        return os.path.join(self.directory, "%s.%s" % (daemon, suffix))

    def vtysh_file(self, path):
        return self.host.exec("vtysh", "--vty_socket", self.directory, "-f", path, check=False, timeout=20)

    def vtysh(self, *commands):
        arguments = ["vtysh", "--vty_socket", self.directory]
        for command in commands:
            arguments += ["-c", command]
        return self.host.exec(*arguments, check=False, timeout=10).stdout

    def ospf_full_neighbours(self):
        rows = [line.split() for line in self.vtysh("show ip ospf neighbor").splitlines()]
        return {row[0] for row in rows if len(row) > 2 and row[2].startswith("Full")}

    def bfd_up_peers(self):
        rows = [line.split() for line in self.vtysh("show bfd peers brief").splitlines()]
        return {row[2] for row in rows if len(row) > 3 and row[3] == "up"}

    def log(self):
        return "\n".join("%s: %s" % (daemon, read_log(self._path(daemon, "log"))[-2000:]) for daemon in self.daemons)

    def diagnostics(self):
        return "frr %s:\n%s\n%s\n%s" % (self.host.name, self.vtysh("show ip ospf neighbor"),
                                        self.vtysh("show bfd peers brief"), self.log())
