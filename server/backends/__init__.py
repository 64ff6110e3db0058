"""Inference backends: each runs a model's windows, the front end does the rest."""

from server.backends.base import Backend

__all__ = ["Backend"]
