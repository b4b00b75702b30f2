"""What a log line may say about a database error: its type and a short message, never the
SQL statement or its parameters (usage rows and key hashes travel in them: audit #30). The
engines are also created with ``hide_parameters=True`` (``store/db.py``), so even a traceback
shows no bound value."""

from __future__ import annotations

from ..scrub import scrub

#: characters of the message kept
MAX = 200


def brief(e: BaseException) -> str:
    """``TypeName: first line of the message`` (the driver's own error for SQLAlchemy's),
    scrubbed and cut to ``MAX`` characters."""
    orig = getattr(e, "orig", None)  # sqlalchemy.exc.DBAPIError: the driver's error
    inner = orig if isinstance(orig, BaseException) else e
    text = str(inner).split("\n", 1)[0].split("[SQL:", 1)[0].strip()
    name = type(e).__name__ if inner is e else f"{type(e).__name__}({type(inner).__name__})"
    return f"{name}: {scrub(text)[:MAX]}" if text else name
