"""How customers appear in the log: the account in full, the customer's id shortened.

An operator needs to tell customers apart and to find one in the WeCom console; the log does not
need (and, kept for months and shipped to other systems, should not hold) every customer's full
``external_userid``. Six leading and four trailing characters tell apart the customers of one
account in practice; DEBUG lines, which hold message contents anyway, may show more.
"""

from __future__ import annotations

_HEAD, _TAIL = 6, 4


def short_user(external_userid: str) -> str:
    """``wmAbCd..xY12`` for a long id; a short one (the emulator's, a test's) is shown whole."""
    if len(external_userid) <= _HEAD + _TAIL + 2:
        return external_userid
    return f"{external_userid[:_HEAD]}..{external_userid[-_TAIL:]}"


def who(open_kfid: str, external_userid: str) -> str:
    """``account/customer`` as every log line about one customer names it."""
    return f"{open_kfid}/{short_user(external_userid)}"
