"""The Anthropic Messages dialect and the servers that speak it."""
