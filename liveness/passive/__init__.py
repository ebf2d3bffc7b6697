"""Passive (single-image) presentation-attack checks: separate, explained signals and
their combination into one score."""
