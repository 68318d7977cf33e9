"""What the real-browser test modules share: where Chromium is, and when to skip without it.

tests/test_browser_signin.py holds the browser fixtures (``chromium``, ``tab``);
other browser modules import them from there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def browser_or_skip() -> None:
    """Skip without Debian's Chromium; fail instead when AUTHBRIDGE_REQUIRE_BROWSER=1 (CI)."""
    if CHROMIUM.exists():
        return
    reason = f"no {CHROMIUM}: install Debian's chromium (apt-get install chromium)"
    if os.environ.get("AUTHBRIDGE_REQUIRE_BROWSER") == "1":
        pytest.fail(reason + "; AUTHBRIDGE_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(reason)
