"""Test support: background servers, fixture loading, shared pytest fixtures."""
