"""initlab: make weight initialization visible and testable."""

__version__ = "0.1.0"
