"""Stable LM 2 1.6B reproducibility companion."""
