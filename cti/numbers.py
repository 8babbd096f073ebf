"""Phone number normalisation for Chinese numbers, so a caller matches their customer record.

- Mobile: 11 digits starting with 1 ("13800138000"); "+86", "0086" or "86" in front is dropped.
- Landline: area code with its leading 0 and the local number ("021-6123 4567" -> "02161234567");
  "+86 21 6123 4567" becomes "02161234567".
- Service numbers (400/800) and extensions are kept as digits.
- A SIP URI or display form ("sip:13800138000@host", '"Zhang" <sip:...>') gives its user part.
"""

from __future__ import annotations

import re

_URI_USER = re.compile(r"sips?:([^@;>]+)")


def normalize(raw: str) -> str:
    text = raw.strip()
    uri = _URI_USER.search(text)
    if uri:
        text = uri.group(1)
    plus = text.startswith("+")
    digits = re.sub(r"\D", "", text)
    if plus or digits.startswith("0086"):
        digits = digits.removeprefix("0086") if digits.startswith("0086") else digits
        if digits.startswith("86"):
            digits = digits[2:]
            if not digits.startswith("1") or len(digits) != 11:
                digits = "0" + digits  # national number of a landline: restore the trunk 0
    elif digits.startswith("86") and len(digits) == 13 and digits[2] == "1":
        digits = digits[2:]
    return digits


def kind(number: str) -> str:
    """mobile, landline, service (400/800), or extension."""
    if re.fullmatch(r"1[3-9]\d{9}", number):
        return "mobile"
    if re.fullmatch(r"[48]00\d{7}", number):
        return "service"
    if re.fullmatch(r"0\d{9,11}", number):
        return "landline"
    return "extension"
