"""The four paths between a client dialect and an upstream dialect, as rows of one table
(``registry.py``); each row prepares the upstream request, decodes its answer, relays its stream
and ends a failed stream the way its client dialect expects."""
