"""``tunrelay-wg INTERFACE``: tunrelay in wireguard-go's place, as wg-quick's userspace implementation.

Theory of operation
-------------------
wg-quick(8), finding no kernel WireGuard, runs
``"${WG_QUICK_USERSPACE_IMPLEMENTATION:-wireguard-go}" INTERFACE`` and then configures the
interface with ``wg setconf`` and ``ip``. So this command does what wireguard-go's ``main``
does: it creates the tun device INTERFACE, serves the UAPI at
``/var/run/wireguard/INTERFACE.sock``, and returns once both exist, leaving the relay
running in the background (unless ``WG_PROCESS_FOREGROUND=1`` or ``-f``/``--foreground``).

The relay is the same ``RelayService`` the twistd plugin runs, one relay with two front
doors, on a ``RelayConfig`` built in memory: a WireGuard-mode tun named INTERFACE (MTU 1420;
no addresses, wg-quick adds them), no private key and no listen port until ``wg setconf``
sets them (until then nothing can handshake: counted ``no_private_key`` drops), no peers.
Its control socket is the usual ``/run/tunrelay/INTERFACE.sock``, so ``tunrelay status``
and ``tunrelay showconf`` work on it; SIGHUP has no file to re-read.

Going to the background: the command starts the relay again as a foreground child in a new
session, holding the write end of a pipe, and waits until the child writes ``ready``
(device and sockets up, reactor running) or the one line that says why it cannot start,
which the command prints; its exit status says which (0 or 1), so wg-quick's next step
(``wg setconf``) always finds the socket.

Logs go where wireguard-go's go: standard output in the foreground; in the background, to
the command's standard output only if ``LOG_LEVEL`` is set (and not ``silent``), else
nowhere. ``LOG_LEVEL=verbose`` (or ``debug``) logs everything, ``error`` (the default)
warnings and errors, ``silent`` nothing. The relay stops on SIGTERM or SIGINT, and when its
interface is deleted (``wg-quick down`` runs ``ip link delete``).
"""

import os
import select
import subprocess
import sys
import time

from tunrelay import __version__
from tunrelay.config import IFNAMSIZ, InterfaceConfig, RelayConfig
from tunrelay.constants import DEFAULT_CONTROL_SOCKET, DEFAULT_MTU, DEFAULT_UAPI_SOCKET

__all__ = ["build_config", "main"]

READY_FD_ENV = "TUNRELAY_WG_READY_FD"
READY = b"ready"
READY_TIMEOUT = 30.0     # a relay that is neither up nor failed by then is stuck
USAGE = "Usage: tunrelay-wg [-f/--foreground] INTERFACE-NAME\n"


def build_config(name):
    """The in-memory configuration of ``tunrelay-wg NAME`` (see the module docstring)."""
    return RelayConfig(interface=InterfaceConfig(name=name, mode="tun", mtu=DEFAULT_MTU),
                       control_socket=DEFAULT_CONTROL_SOCKET.format(interface=name),
                       uapi_socket=DEFAULT_UAPI_SOCKET.format(interface=name),
                       source="<tunrelay-wg %s>" % name)


def _log_level():
    from twisted.logger import LogLevel

    setting = os.environ.get("LOG_LEVEL", "")
    if setting in ("verbose", "debug"):
        return LogLevel.info
    if setting == "silent":
        return None
    return LogLevel.warn


def _start_logging():
    from twisted.logger import (FilteringLogObserver, LogLevelFilterPredicate, globalLogBeginner,
                                textFileLogObserver)

    level = _log_level()
    observers = [] if level is None else [FilteringLogObserver(
        textFileLogObserver(sys.stdout), [LogLevelFilterPredicate(defaultLogLevel=level)])]
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)


def _tell_parent(descriptor, message):
    """Hand the waiting parent its answer (once); no parent in the foreground."""
    if descriptor is None:
        return
    try:
        os.write(descriptor, message)
    except OSError:
        pass   # the parent gave up waiting; the relay runs on regardless
    finally:
        os.close(descriptor)


def _run(name):
    """The relay in the foreground until it stops; the exit status."""
    from tunrelay import reactor as event_loop

    loop = event_loop.install()   # the same event loop as under twistd
    from twisted.internet import reactor

    from tunrelay.service import RelayService

    ready_fd = os.environ.pop(READY_FD_ENV, None)
    ready_fd = int(ready_fd) if ready_fd is not None and ready_fd.isdigit() else None
    _start_logging()
    service = RelayService(build_config(name), reactor)
    service.event_loop = loop
    try:
        service.privilegedStartService()
    except SystemExit:
        _tell_parent(ready_fd, ("cannot start: %s" % (service.startup_failure or "see the log")).encode())
        return 1
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.callWhenRunning(_tell_parent, ready_fd, READY)
    reactor.run()
    return 0


def _wait_for_child(read_end):
    """What the child said before closing the pipe (bounded), or None at the deadline."""
    answer = b""
    deadline = time.monotonic() + READY_TIMEOUT
    while len(answer) < 4096:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
            return None
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        answer += chunk
    return answer


def _daemonize(name):
    read_end, write_end = os.pipe()
    environment = dict(os.environ, WG_PROCESS_FOREGROUND="1")
    environment[READY_FD_ENV] = str(write_end)
    level = os.environ.get("LOG_LEVEL", "")
    output = None if level and level != "silent" else subprocess.DEVNULL
    child = subprocess.Popen([sys.executable, "-m", "tunrelay.wg_userspace", name], env=environment,
                             pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                             start_new_session=True)
    os.close(write_end)
    try:
        answer = _wait_for_child(read_end)
    finally:
        os.close(read_end)
    if answer == READY:
        return 0
    if answer is None:
        reason = "the relay was not ready within %gs" % READY_TIMEOUT
    elif answer:
        reason = answer.decode("utf-8", "replace")
    else:
        reason = "the relay exited (status %s) before it was ready" % child.wait(5)
    sys.stderr.write("tunrelay-wg: %s: %s\n" % (name, reason))
    return 1


def main(argv=None):
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments == ["--version"]:
        sys.stdout.write("tunrelay-wg (tunrelay %s): a wireguard-go-compatible userspace WireGuard\n" % __version__)
        return 0
    foreground = os.environ.get("WG_PROCESS_FOREGROUND") == "1"
    if len(arguments) == 2 and arguments[0] in ("-f", "--foreground"):
        foreground, arguments = True, arguments[1:]
    if len(arguments) != 1 or arguments[0].startswith("-"):
        sys.stdout.write(USAGE)
        return 2
    name = arguments[0]
    if not name or len(name) >= IFNAMSIZ or "/" in name or any(character.isspace() for character in name):
        sys.stderr.write("tunrelay-wg: %r is not an interface name (at most %d characters, no '/' or spaces)\n"
                         % (name, IFNAMSIZ - 1))
        return 1
    return _run(name) if foreground else _daemonize(name)


if __name__ == "__main__":
    sys.exit(main())
