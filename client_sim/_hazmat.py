"""The device side's one room for ``cryptography.hazmat``.

Every other module in ``client_sim`` reaches low-level primitives through
the functions here.  Each function wraps exactly one primitive, states its
size limits, and says why it is safe to call the way it is (nonce policy,
contributory-DH check, work-factor bounds).  Nothing here invents a
primitive; everything composes what ``cryptography`` provides.
"""

from __future__ import annotations
