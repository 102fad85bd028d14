"""Human-readable sizes and durations, as Docker's go-units prints them."""

from __future__ import annotations

import time


def human_size(n: float) -> str:
    """Decimal units like Docker's `HumanSize`: 1.23MB."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    n = float(n)
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


def human_duration(seconds: float) -> str:
    """Docker's `HumanDuration`: 'Less than a second', '3 seconds', 'About a minute', ..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def since(ts: float) -> str:
    return human_duration(time.time() - ts)


def parse_bytes(text: str) -> int:
    """Parse '512m', '1g', '100k', '1024' (binary units, as docker's RAMInBytes)."""
    t = str(text).strip().lower()
    mult = {"b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
    if t.endswith("b") and len(t) > 1 and t[-2] in mult:
        t = t[:-1]
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(t)
