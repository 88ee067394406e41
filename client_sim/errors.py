"""Every failure the device SDK reports: one tree, one name per failure a caller can act on.

Everything the SDK raises on purpose is a :class:`DeviceError` (plus
``TypeError`` for a programming mistake such as passing a string where a
list of identities belongs).  The layers below the :class:`~client_sim.Device`
facade raise these same classes -- the HTTP client raises
:class:`ServerError`, the transports :class:`ConnectionFailed`, object
storage :class:`StorageTransferFailed` -- so there is nothing to translate
on the way up except a server's error *code* into the failure it means
(:func:`from_server`).

Two libraries keep errors of their own, because they are usable without the
SDK: the age implementation (:mod:`client_sim.age`, whose
``DecryptionError`` mirrors age's) and the sealed format
(:mod:`client_sim.sealed`).  The facade turns theirs into
:class:`DecryptionFailed` in one place.

Messages never hold a secret: no password, key, token or presigned URL, and
no text a server chose (a hostile server's words stay in
:attr:`ServerError.message`, never in ``str(exc)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

__all__ = [
    "AlreadyRegistered",
    "BackupNotFound",
    "BlobUnavailable",
    "CardVerificationFailed",
    "ConcurrentChange",
    "ConnectionFailed",
    "ContextMismatch",
    "DecryptionFailed",
    "DeviceError",
    "DeviceInUse",
    "GroupVerificationFailed",
    "IdentityChanged",
    "InvalidInput",
    "KdfMismatch",
    "LocalStorageError",
    "LogVerificationFailed",
    "MemberNotFound",
    "NoPrivateKey",
    "NotAMember",
    "NotAnAdmin",
    "NotLoggedIn",
    "OprfVerificationFailed",
    "RedirectRefused",
    "ReplyTooLarge",
    "RetiredKeyUsed",
    "SenderMismatch",
    "ServerError",
    "SourceChanged",
    "SplitView",
    "StaleEpoch",
    "StepUpRequired",
    "StorageOriginRefused",
    "StorageTransferFailed",
    "TooManyAttempts",
    "UnexpectedKeyEvent",
    "UsernameTaken",
    "UsersNotFound",
    "WrongPassword",
    "from_server",
    "reported",
]


class DeviceError(Exception):
    """Base of every failure the SDK reports.  Messages never hold a secret."""


# --- the caller's input ----------------------------------------------------------------


class InvalidInput(DeviceError, ValueError):
    """An argument is invalid: an identity, a weak password, too many recipients."""


class SourceChanged(InvalidInput):
    """The file changed size while it was being encrypted and sent; nothing was stored."""


# --- account and session ---------------------------------------------------------------


class NotLoggedIn(DeviceError):
    """No live session: log in (again).  Also after a password change elsewhere."""


class UsernameTaken(DeviceError):
    """The username is registered by someone else."""


class WrongPassword(DeviceError):
    """The server or the backup refused the password (or the username)."""


class StepUpRequired(DeviceError):
    """A destructive call (revoke, identity reset, backup delete or replace) needs
    the password again: call :meth:`client_sim.Device.confirm_password` first."""


class TooManyAttempts(DeviceError):
    """Logins are throttled; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- keys and cards ----------------------------------------------------------------------


class NoPrivateKey(DeviceError):
    """This device holds no private key: register, or restore the backup."""


class DeviceInUse(DeviceError):
    """The device's keystore belongs to another identity; clean it up first."""


class AlreadyRegistered(DeviceError):
    """The identity already has an active card made on another device."""


class UsersNotFound(DeviceError):
    """Some identities have no active card."""

    def __init__(self, identities: Sequence[str]) -> None:
        super().__init__(f"no active card for: {', '.join(identities)}")
        self.identities = tuple(identities)


class CardVerificationFailed(DeviceError):
    """A card from the server failed verification (signature, identity or id)."""


class OprfVerificationFailed(DeviceError):
    """The server's password-hardening answer failed verification.

    Its OPRF key is not certified by a root this device pins, or the proof
    does not verify: the server (or something between) is not the one this
    app was configured for.  Nothing was derived or sent.
    """


class LogVerificationFailed(CardVerificationFailed):
    """The key-transparency log does not vouch for what the directory said.

    A card without a valid inclusion proof, a checkpoint not signed by the
    pinned log key, or one older than the device's freshness bound.
    """


class SplitView(DeviceError):
    """The log showed this device two trees that can't both be true.

    Two checkpoints, both signed by the log key, that no consistency proof
    connects: the backend is showing different directories to different
    people (or rolled its log back).  Report both notes: together they prove
    it to anyone holding the log's public key.

    Attributes:
        ours: the checkpoint this device had accepted (signed note).
        theirs: the conflicting one (signed note).
    """

    def __init__(self, ours: str, theirs: str) -> None:
        super().__init__("the transparency log forked: two signed checkpoints disagree")
        self.ours = ours
        self.theirs = theirs


class UnexpectedKeyEvent(DeviceError):
    """The log holds a card for this identity that this person never published.

    Someone published (or rotated to) keys for this identity: a substituted
    card, or a device or backup of this person's that this device does not
    know about; or revoked the card this device still uses (contacts stop
    encrypting to it).

    Attributes:
        identity: this device's identity.
        card_id: the card in the log.
        kind: ``publish``, ``rotate`` or ``revoke``.
        index: its leaf index in the log.
        checkpoint: the signed checkpoint that includes it (evidence).
    """

    def __init__(self, identity: str, card_id: str, kind: str, index: int, checkpoint: str) -> None:
        super().__init__(
            f"the transparency log holds a card for {identity} that this device did not "
            f"publish: {kind} of card {card_id} at entry {index}"
        )
        self.identity = identity
        self.card_id = card_id
        self.kind = kind
        self.index = index
        self.checkpoint = checkpoint


class IdentityChanged(DeviceError):
    """A contact's active card does not continue the card this device pinned.

    An identity reset: the contact revoked and re-registered, lost their keys,
    or the server shows a card they never made.  Nothing was encrypted to the
    new card.  Compare :attr:`safety_number` with the contact (in person, or
    over another channel), then accept the new card explicitly with
    ``Device.trust(identity, new_card_id)``.

    Attributes:
        identity: the contact.
        old_card_id: the card this device pinned for them.
        new_card_id: the active card the directory shows now.
        safety_number: six five-digit groups over both people's current
            cards (``chalicelib.wire.safety.safety_number``), or None on a
            device without keys of its own.
    """

    def __init__(
        self, identity: str, old_card_id: str, new_card_id: str, safety_number: str | None
    ) -> None:
        compare = (
            f"; compare safety number {safety_number} with {identity}" if safety_number else ""
        )
        super().__init__(
            f"{identity}'s identity changed: card {new_card_id} is not a signed rotation of "
            f"card {old_card_id}{compare} before trusting it"
        )
        self.identity = identity
        self.old_card_id = old_card_id
        self.new_card_id = new_card_id
        self.safety_number = safety_number


class ConcurrentChange(DeviceError):
    """Another device kept changing the same state; nothing was lost, try again."""


# --- data ------------------------------------------------------------------------------------


class DecryptionFailed(DeviceError):
    """The data could not be decrypted or its sender could not be verified."""


class SenderMismatch(DecryptionFailed):
    """The data is validly signed, but by someone other than the expected sender."""


class ContextMismatch(DecryptionFailed):
    """The data is validly signed, but for another context than it is read in.

    A blob whose content was sealed for another blob id, by someone other
    than the blob's owner, or for other readers than the blob names (what a
    server that swaps or replays content produces); or a message opened with
    an expected context it wasn't sealed with.  ``reason`` is one of
    ``context``, ``sender``, ``recipients``, ``time``, ``unbound``.  Nothing
    unverified was released.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RetiredKeyUsed(DecryptionFailed):
    """The data is validly signed, but with a card that was retired (superseded
    or revoked) before the signed time of sealing: someone still holding an
    old key.  ``card_id``, ``card_status``, ``status_changed_at`` (the
    directory's clock, seconds) and ``sealed_at_ms`` say which and when.
    Nothing unverified was released."""

    def __init__(
        self, card_id: str, card_status: str, status_changed_at: int, sealed_at_ms: int
    ) -> None:
        super().__init__(f"signed with a {card_status} card after it was retired")
        self.card_id = card_id
        self.card_status = card_status
        self.status_changed_at = status_changed_at
        self.sealed_at_ms = sealed_at_ms


class BlobUnavailable(DeviceError):
    """The blob has no content to download yet (reserved) or was rejected."""


# --- groups -------------------------------------------------------------------------------------


class NotAMember(DeviceError):
    """This identity is not (or no longer) a member of the group, or the group doesn't exist."""


class NotAnAdmin(DeviceError):
    """Only an admin of the group can make this change."""


class StaleEpoch(ConcurrentChange):
    """Another member changed the group first; the change was not made.  Retry it
    (the SDK re-bases and retries a few times before raising this)."""


class MemberNotFound(InvalidInput):
    """The identity named is not a member of the group (or has no card to add)."""


class GroupVerificationFailed(DeviceError):
    """The server served a group epoch, roster or wrap that doesn't verify (a forged
    or reordered chain, a wrap for another card); nothing was accepted.  ``code``
    says which check failed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- backup -----------------------------------------------------------------------------------


class BackupNotFound(DeviceError):
    """There is no key backup for this identity."""


class KdfMismatch(DeviceError):
    """The backup was made with other password-derivation parameters than this device's."""


# --- where things are kept and how they travel ------------------------------------------------


class LocalStorageError(DeviceError):
    """The keystore or the card cache on this device is unusable."""


class ConnectionFailed(DeviceError, ConnectionError):
    """No answer: the request got no HTTP reply (refused, reset, timed out)."""


class ReplyTooLarge(DeviceError):
    """The API's reply was longer than the transport's bound ``limit``
    (``client_sim.transport.MAX_API_REPLY_BYTES``); the rest was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the server's reply is larger than {limit} bytes")
        self.limit = limit


class RedirectRefused(DeviceError):
    """The API answered with a redirect to another origin (scheme, host or
    port); nothing was sent there."""

    def __init__(self) -> None:
        super().__init__("the server redirected to another origin; the request was not repeated")


class StorageTransferFailed(DeviceError):
    """Object storage refused a presigned upload or download.

    ``status`` is the HTTP status and ``code`` the storage error code (such
    as ``PreconditionFailed`` or ``AccessDenied``) when it sent one.
    """

    def __init__(self, action: str, status: int, code: str | None) -> None:
        super().__init__(f"{action} refused by object storage: {status} {code or ''}".rstrip())
        self.status = status
        self.code = code


class StorageOriginRefused(DeviceError):
    """A transfer URL (or a storage redirect) pointed outside the configured storage origins.

    Nothing was sent to it: the URL is checked before any connection.
    ``origin`` names where it pointed (``scheme://host[:port]``, from the
    SDK's own normalised reading, any unusual character percent-encoded), so
    a user can tell a misconfiguration (add the origin) from an attack.  The
    rest of the URL is never shown: its query string is a bearer credential.
    """

    def __init__(self, origin: str) -> None:
        super().__init__(f"refused a transfer to {origin}: not a configured storage origin")
        self.origin = origin


class ServerError(DeviceError):
    """The server answered with an error, or with something that isn't a valid answer.

    ``status`` is the HTTP status and ``code`` the stable error code from the
    body (``http_<status>`` when the body is not a Sealbox error,
    ``malformed`` when a success reply could not be used).  ``message`` is the
    server's own text; it is kept out of ``str(exc)`` because the server
    chose it.  ``retry_after`` is the ``Retry-After`` header in seconds, if any.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str = "",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"the server refused the request: {status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @classmethod
    def malformed(cls, what: str) -> ServerError:
        """A success reply the SDK can't use (missing fields, wrong types, bad encoding).

        Its message is the SDK's own words (``what`` comes from the SDK,
        never from the reply), so it is also what ``str(exc)`` says.
        """
        text = f"the server sent a malformed {what}"
        exc = cls(200, "malformed", text)
        exc.args = (text,)
        return exc


def from_server(exc: ServerError) -> DeviceError:
    """The failure a server error code means to the caller of the SDK.

    Codes a caller acts on get their own class; every other refusal stays
    the :class:`ServerError` it is (the same object).
    """
    if exc.code == "invalid_credentials":
        return WrongPassword("wrong username or password")
    if exc.code == "too_many_attempts":
        return TooManyAttempts("too many failed attempts; try again later", exc.retry_after)
    if exc.code == "username_taken":
        return UsernameTaken("this username is taken")
    if exc.code == "invalid_token":
        return NotLoggedIn("the session has ended; log in again")
    if exc.code == "step_up_required":
        return StepUpRequired("this change needs the password: confirm it first")
    if exc.code == "wrong_login_key":
        return WrongPassword("the server refused the password")
    if exc.code == "stale_epoch":
        return StaleEpoch("another member changed the group first")
    if exc.code == "not_an_admin":
        return NotAnAdmin("only an admin of the group can make this change")
    return exc


_P = ParamSpec("_P")
_T = TypeVar("_T")


def reported(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Wraps a public SDK method so a server refusal surfaces as what it means.

    Everything below the facade already raises :class:`DeviceError`
    subclasses; only a refusal the caller acts on by its code (a wrong
    password, throttling, a taken name, an ended session) is renamed, by
    :func:`from_server`, with the original as its cause.
    """

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except ServerError as exc:
            meant = from_server(exc)
            if meant is exc:
                raise
            raise meant from exc

    return wrapper
