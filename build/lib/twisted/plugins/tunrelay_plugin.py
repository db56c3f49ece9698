"""twistd plugin: ``twistd tunrelay -c FILE``. Only a ServiceMaker; the work is in tunrelay.tap."""
from twisted.application.service import ServiceMaker

tunrelay = ServiceMaker(
    "tunrelay",
    "tunrelay.tap",
    "VPN-style tun/tap relay over TCP, UDP or raw Ethernet",
    "tunrelay",
)
