"""The core every request goes through: the exchange, the pipeline contract, primed streams with
their end hooks, and the gateway that runs fronts into the pipeline (docs/architecture.md)."""
