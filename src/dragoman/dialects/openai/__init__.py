"""The OpenAI Chat Completions dialect and the servers that speak it."""
