"""One policy per module, each a ``Stage`` (``core/pipeline.py``); their order lives only in
``bootstrap.py`` (docs/architecture.md, "Request flow")."""
