"""Checks on what a client sends, run before anything is routed, translated or stored: caps on
a request's size, the shapes of its fields, the addresses it names (docs/limits.md, "Request
caps"; docs/translation.md, "Validation")."""
