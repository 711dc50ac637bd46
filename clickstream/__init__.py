"""Clickstream: real-time web analytics and marketing attribution (CLI and settings)."""

__version__ = "0.1.0"
