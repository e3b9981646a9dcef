"""Workflows: orchestration of the numerical stages over files, with progress bars."""
