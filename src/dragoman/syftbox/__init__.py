"""dragoman's models as a SyftBox router: file RPC in, the gateway behind (docs/syftbox.md).

This package imports nothing heavy: the SyftBox libraries (``syft-core``, ``syft-rpc``,
``syft-event``, ``syft-accounting-sdk``) are an optional extra, ``dragoman[syftbox]``, loaded
only by the modules that use them. ``missing_libraries()`` is what config validation asks, so a
config with a ``syftbox:`` section fails at start with the install command rather than at the
first request.
"""

from __future__ import annotations

import importlib.util

#: the command that installs what this package needs
INSTALL = "pip install 'dragoman[syftbox]'"

#: module -> PyPI distribution of every library the extra brings
LIBRARIES = {
    "syft_core": "syft-core",
    "syft_rpc": "syft-rpc",
    "syft_event": "syft-event",
    "syft_accounting_sdk": "syft-accounting-sdk",
}


def missing_libraries() -> list[str]:
    """The extra's distributions that cannot be imported here (empty when all are there)."""
    missing = []
    for module, dist in LIBRARIES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    return missing


def require() -> None:
    """Raise ``ImportError`` naming the install command when the extra is not installed."""
    missing = missing_libraries()
    if missing:
        raise ImportError(f"SyftBox support needs {', '.join(missing)}: {INSTALL}")
