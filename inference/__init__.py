"""Inference: the Python ``predict`` API (and, later, corpus-scale batch inference)."""
