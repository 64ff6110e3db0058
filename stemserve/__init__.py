"""stemserve: a music source separation inference service."""

__version__ = "0.1.0"
