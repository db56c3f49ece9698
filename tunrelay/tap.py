"""``twistd tunrelay``: command-line options and the service maker.

The configuration is loaded and validated while options are parsed, before twistd
daemonizes, so a config error reaches the terminal as one line per problem and twistd
exits non-zero without a traceback.
"""

import sys

from twisted.python import usage

from tunrelay import config as configuration
from tunrelay import reactor

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    synopsis = "-c CONFIG"
    longdesc = (
        "Relay frames between a tun/tap device and peers over TCP, UDP or raw Ethernet. "
        "CONFIG is a YAML file (see etc/tunrelay.yaml and README.md). Needs CAP_NET_ADMIN "
        "(and CAP_NET_RAW for ethernet transports) at start; twistd's -u/-g drop privileges "
        "after the device and sockets are open.")
    optParameters = [
        ["config", "c", None, "Path to the YAML configuration file (required)."],
    ]

    def postOptions(self):
        if not self["config"]:
            raise usage.UsageError("-c/--config is required")
        try:
            self["relay_config"] = configuration.load(self["config"])
            # Keys are read now, as root and before daemonizing, so a bad key file is one
            # line on the terminal like any other configuration error.
            self["secrets"] = configuration.load_secrets(self["relay_config"])
        except configuration.ConfigError as failure:
            for problem in failure.problems:
                sys.stderr.write("tunrelay: config error: %s\n" % problem)
            raise SystemExit(2)
        # Before twistd imports the default reactor (see tunrelay.reactor).
        self["event_loop"] = reactor.install()


def makeService(options):
    from tunrelay.service import RelayService

    service = RelayService(options["relay_config"], secrets=options["secrets"])
    service.event_loop = options["event_loop"]
    return service
