"""Packaged data files (the demo configuration)."""
