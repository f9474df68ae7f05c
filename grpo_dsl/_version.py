"""The package version, in one place (the plan and emitted modules record it)."""

__version__ = "0.1.0"
