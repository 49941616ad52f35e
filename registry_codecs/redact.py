"""Masking secrets in text shown to people: log lines, error messages, dead-letter headers, reprs.

`mask_secrets` is the one masking rule of the project: the user info of any URL (``https://u:p@host`` ->
``https://***@host``) and the value after a secret-looking name (``password=...``, ``token: ...``,
``Authorization: Bearer ...``). Callers that know the exact secrets (the registry client knows its own
credentials) mask those too; this catches what nobody told them.
"""

from __future__ import annotations

import re
from typing import Final

_USERINFO: Final = re.compile(r"(?<=://)[^/@\s]*@")
_SECRET_PAIR: Final = re.compile(
    # "Authorization: Bearer <token>": the scheme word is not the secret, the word after it is
    r"(?i)\b(password|passwd|secret|token|authorization|api[_-]?key)(\s*[=:]\s*)(?:(?:bearer|basic)\s+)?\S+"
)


def mask_secrets(text: str) -> str:
    """Return `text` with URL user info and ``password=...``-like values replaced by ``***``."""
    return _SECRET_PAIR.sub(r"\1\2***", _USERINFO.sub("***@", text))


__all__ = ["mask_secrets"]
