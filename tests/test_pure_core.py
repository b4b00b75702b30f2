"""The translation core is pure: importing it pulls in no HTTP client, database or crypto stack
(the books and the transports are separate layers; docs/architecture.md)."""

from __future__ import annotations

import subprocess
import sys

BLOCKED = ("aiohttp", "sqlalchemy", "cryptography", "asyncpg", "aiosqlite", "alembic")


def test_translate_imports_without_io_stacks() -> None:
    code = (
        "import sys\n"
        f"for m in {BLOCKED!r}:\n"
        "    sys.modules[m] = None  # any import of it raises ImportError\n"
        "import dragoman.translate, dragoman.usage, dragoman.accounting.types\n"
        "import dragoman.translate.a2o, dragoman.translate.o2a\n"
        "import dragoman.translate.stream_o2a, dragoman.translate.stream_a2o\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {BLOCKED!r})\n"
        "assert not [m for m in loaded if sys.modules[m] is not None], loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_books_import_without_http() -> None:
    """Every module of the books (the Accountant included) loads without aiohttp: the alert
    webhooks' client is made at the first alert, and the HTTP endpoints live in server/."""
    code = (
        "import sys, importlib, pkgutil\n"
        "sys.modules['aiohttp'] = None  # any import of it raises ImportError\n"
        "import dragoman.accounting as books\n"
        "names = [m.name for m in pkgutil.iter_modules(books.__path__)]\n"
        "for name in names:\n"
        "    importlib.import_module('dragoman.accounting.' + name)\n"
        "assert {'service', 'ledger', 'alerts', 'queries'} <= set(names), names\n"
        "assert books.Accountant.__module__ == 'dragoman.accounting.service'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
