"""hipseg."""
