"""The browser the report tests share (one Chromium for the session)."""

from support.browser import browser

__all__ = ["browser"]
