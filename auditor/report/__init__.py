"""Reporters: the only stage that writes output files."""
