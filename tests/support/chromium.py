"""Debian's headless Chromium as every browser test launches it (Playwright drives it; its
own browser download does not work here), and the accessibility check the pages share."""

from __future__ import annotations

import os
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

NAMED_ROLES = {"textbox", "combobox", "checkbox", "button", "searchbox"}
"""Roles of the controls a person operates (a select is a combobox; its option list, a
MenuListPopup, is named by the combobox and needs no name of its own)."""


def unnamed_controls(page: Any) -> tuple[int, list[str]]:
    """Chromium's own accessibility tree (over the DevTools protocol): how many form
    controls and buttons it holds, and the roles of those it could give no name."""
    cdp = page.context.new_cdp_session(page)
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    cdp.detach()
    controls = [
        n for n in nodes if not n.get("ignored") and n.get("role", {}).get("value") in NAMED_ROLES
    ]
    unnamed = [
        n["role"]["value"] for n in controls if not n.get("name", {}).get("value", "").strip()
    ]
    return len(controls), unnamed
