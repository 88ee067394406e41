"""OPRF evaluations for password hardening (docs/spec/oprf.md).

A device blinds what it derived from the password and asks for an
evaluation before it can compute its login key or open its backup.  This
service validates the blinded element, charges the evaluation to the
account's throttling counter (through :class:`AccountService`, which owns
the counters), and evaluates under every key version in service (current,
and the previous one during a rotation window) -- one request, so a device
can re-wrap what was derived under the previous version.

The account need not exist: keys are derived from the username, so an
unknown name gets a consistent answer and nothing is looked up.
"""

from __future__ import annotations

from typing import Protocol

from chalicelib.errors import InvalidBlindedElement
from chalicelib.services.accounts import AccountService
from chalicelib.wire import oprf
from chalicelib.wire.b64 import b64url_decode
from chalicelib.wire.oprf_keys import OprfEvaluation, OprfKeys

__all__ = ["OprfKeySource", "OprfService"]


class OprfKeySource(Protocol):
    def keys(self) -> OprfKeys:
        """The key versions in service; raises ``OprfUnavailable`` when unreadable."""


class OprfService:
    """Evaluate the OPRF for a username, charged and throttled per account."""

    def __init__(self, keys: OprfKeySource, accounts: AccountService) -> None:
        self._keys = keys
        self._accounts = accounts

    def current_version(self) -> int:
        """The OPRF key version new login keys and backups are derived under."""
        return self._keys.keys().current.version

    def evaluate(
        self, username: object, blinded_element: object, device_cookie: object = None
    ) -> list[OprfEvaluation]:
        """Evaluate ``blinded_element`` under ``username``'s account keys, current first.

        Checked in this order, so a request that fails changes nothing: the
        element (400), the keys (503), then the charge (429).

        Raises:
            InvalidBlindedElement: not a canonical non-identity element.
            InvalidUsername, InvalidRequest: as the login.
            OprfUnavailable: the OPRF key can't be read.
            TooManyAttempts: the counter charged is in a backoff period.
        """
        element = _blinded_element(blinded_element)
        keys = self._keys.keys()
        identity = self._accounts.charge_oprf_evaluation(username, device_cookie)
        return [key.evaluate(identity, element) for key in keys.all()]


def _blinded_element(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidBlindedElement()
    try:
        return oprf.check_element(b64url_decode(value, max_len=oprf.ELEMENT_SIZE))
    except (ValueError, oprf.OprfError) as exc:
        raise InvalidBlindedElement() from exc
