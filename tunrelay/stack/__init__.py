"""The in-process responder: pure, clock-injected protocol cores (no I/O, no Twisted).

``interface.ResponderInterface`` is the entry point: it demultiplexes frames to ARP
(``arp_cache``), IPv4 reassembly (``reassembly``), ICMP (``icmp``) and the TCP core
(``tcp``). Limits and timers live in ``limits``.
"""
