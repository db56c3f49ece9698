from setuptools import find_packages, setup

setup(
    name="tunrelay",
    version="0.1.0",
    description="Twisted-based tun/tap relay: link hosts over TCP, UDP or raw Ethernet",
    python_requires=">=3.9",
    packages=find_packages(include=["tunrelay", "tunrelay.*"]) + ["twisted.plugins"],
    package_data={"twisted": ["plugins/tunrelay_plugin.py"]},
    install_requires=[
        "twisted>=22.10",
        "pyroute2>=0.7",
        "cryptography>=41",
        "pyyaml>=6",
        # The event loop under Twisted's asyncio reactor: each wake-up of the data path is
        # cheaper on libuv (bench/latency_floor.py); without it the stock asyncio loop runs.
        "uvloop>=0.17; sys_platform == 'linux'",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "scapy>=2.5", "prometheus-client>=0.17", "atheris>=2.3"],
        "bench": ["matplotlib"],
    },
    # tunrelay-wg is one word because wg-quick runs "$WG_QUICK_USERSPACE_IMPLEMENTATION" INTERFACE.
    entry_points={"console_scripts": ["tunrelay = tunrelay.cli:main", "tunrelay-wg = tunrelay.wg_userspace:main"]},
)
