"""Wire shapes of the two dialects: error envelopes, SSE framing, request validation."""
