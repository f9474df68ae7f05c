"""Tools for programs/agent.grpo: functions the model may call, offered with the
JSON schema read from their signatures and docstrings."""

from __future__ import annotations

import datetime


def weekday(date: str) -> str:
    """The day of the week of a date, in English.

    Args:
        date: the date as YYYY-MM-DD, for example 2024-02-29
    """
    return datetime.date.fromisoformat(date.strip()).strftime("%A")
