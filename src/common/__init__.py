"""Pieces both node kinds use: logging, JSON handlers, backoff, config helpers."""
