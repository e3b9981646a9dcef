"""Core types: volumes with affines, label tables, configuration, errors."""
