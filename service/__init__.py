"""Tally: provenance and contribution-weighted settlement for trusted data spaces."""

__version__ = "0.1.0"
