"""Real user agent strings and what minimisation keeps of each, worked out by hand from
the strings (browser family and major version, OS family, device class as ua-parser
names them; the standard library's coarse reduction keeps no version)."""

from __future__ import annotations

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)

KEPT = {
    FIREFOX_LINUX: "Firefox 121 / Linux / desktop",
    CHROME_WINDOWS: "Chrome 120 / Windows / desktop",
    SAFARI_IPHONE: "Mobile Safari 17 / iOS / mobile",
    CHROME_ANDROID: "Chrome Mobile 120 / Android / mobile",
}
"""What is kept with ua-parser installed (the ``privacy`` extra)."""

COARSE = {
    FIREFOX_LINUX: "Firefox / Linux / desktop",
    CHROME_WINDOWS: "Chrome / Windows / desktop",
    SAFARI_IPHONE: "Safari / iOS / mobile",
    CHROME_ANDROID: "Chrome / Android / mobile",
}
"""What the standard library's reduction keeps (no ua-parser)."""
