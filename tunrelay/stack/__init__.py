"""The in-process responder: pure, clock-injected protocol cores (no I/O, no Twisted).

``interface.ResponderInterface`` is the entry point: it demultiplexes frames to ARP
(``arp_cache``), IPv4 with reassembly (``reassembly``) and ICMP (``icmp``), and to the IPv6
layer (``ipv6``: extension headers, the same bounded reassembly, ICMPv6 in ``icmpv6``,
Neighbour Discovery in ``neighbour_discovery``; ARP and ND share ``neighbours``), and hands
TCP of both families to the TCP core (``tcp``). Limits and timers live in ``limits``.
"""
