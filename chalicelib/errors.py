"""The backend's error tree.

Every failure a client can cause or observe is a :class:`SealboxError`
subclass with a stable, machine-readable ``code`` and an HTTP ``status``.
Routes never build error responses themselves: the edge (``chalicelib.http``)
turns these exceptions into ``{"error": {"code", "message"}}`` bodies, in
one place.

Messages are written for humans and are part of the response body, so they
never contain a secret, a token, a key or user data -- only the names of the
fields at fault.
"""

from __future__ import annotations


class SealboxError(Exception):
    """Base of every error that maps to an HTTP response."""

    status: int = 500
    code: str = "internal_error"
    default_message: str = "An internal error occurred."

    def __init__(
        self, message: str | None = None, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(SealboxError):
    """The request body, a field or a parameter is malformed."""

    status = 400
    code = "invalid_request"
    default_message = "The request is malformed."


class InvalidUsername(InvalidRequest):
    code = "invalid_username"
    default_message = (
        "Usernames are 3-64 characters of a-z, 0-9, '.', '_' or '-' after NFKC normalisation."
    )


class InvalidLoginKey(InvalidRequest):
    code = "invalid_login_key"
    default_message = "login_key must be 32 bytes, base64url without padding."


class Unauthorized(SealboxError):
    """Missing, malformed, expired or revoked bearer credential.

    The message never says which check failed: a caller learns only that the
    credential is not accepted (RFC 6750 ``invalid_token``).
    """

    status = 401
    code = "invalid_token"
    default_message = "The bearer token is missing, invalid or expired."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class InvalidCredentials(SealboxError):
    """Login failed.  Same body for an unknown user and a wrong key."""

    status = 401
    code = "invalid_credentials"
    default_message = "Invalid username or login key."


class NotFound(SealboxError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(SealboxError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class UsernameTaken(Conflict):
    code = "username_taken"
    default_message = "This username is already registered."


class PayloadTooLarge(SealboxError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(SealboxError):
    status = 415
    code = "unsupported_media_type"
    default_message = "Request bodies must be application/json."


class TooManyAttempts(SealboxError):
    """Login throttled; ``retry_after`` is whole seconds until the next try."""

    status = 429
    code = "too_many_attempts"
    default_message = "Too many failed attempts. Try again later."

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(headers={"Retry-After": str(self.retry_after)})


class ServiceUnavailable(SealboxError):
    """A dependency (DynamoDB, Secrets Manager) is failing or throttling."""

    status = 503
    code = "service_unavailable"
    default_message = "A backend dependency is unavailable. Try again shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 5) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, headers={"Retry-After": str(self.retry_after)})


class SigningUnavailable(ServiceUnavailable):
    """The app signing key can't be read from Secrets Manager right now."""

    code = "signing_unavailable"
    default_message = "Token signing is temporarily unavailable. Try again shortly."


class InternalError(SealboxError):
    """A bug or an unexpected state.  Logged server-side by type only."""


# --- key directory: cards, backups, login-key change ------------------------


class InvalidIdentity(InvalidRequest):
    code = "invalid_identity"
    default_message = (
        "Identities are 3-64 characters of a-z, 0-9, '.', '_' or '-' after NFKC normalisation."
    )


class CardRejected(InvalidRequest):
    """A published card failed to parse or verify.

    ``code`` is the stable code of the card format error
    (``chalicelib.wire.cards``: ``bad_card_signature``, ``card_clock_skew``,
    ...), so clients see exactly which rule the card broke.
    """

    code = "invalid_card"
    default_message = "The card is invalid."

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CardIdentityMismatch(InvalidRequest):
    code = "card_identity_mismatch"
    default_message = "The card names another identity than the access token."


class InvalidCardId(InvalidRequest):
    code = "invalid_card_id"
    default_message = "card_id must be 43 characters of canonical unpadded base64url."


class CardConflict(Conflict):
    """The publication or revocation lost against the directory's current state."""

    code = "card_conflict"
    default_message = (
        "The identity's active card is not the one this request expects "
        "(already registered, or another device rotated or revoked it)."
    )


class CardNotActive(Conflict):
    code = "card_not_active"
    default_message = "Only the active card can be revoked."


class InvalidBackupName(InvalidRequest):
    code = "invalid_backup_name"
    default_message = "Backup names are 1-64 characters of a-z, 0-9, '.', '_' or '-'."


class InvalidBackup(InvalidRequest):
    code = "invalid_backup"
    default_message = "ciphertext must be a Sealbox key backup, unpadded base64url."


class VersionConflict(Conflict):
    code = "version_conflict"
    default_message = "The stored version is not the one this request expects."


class WrongLoginKey(SealboxError):
    """The current login key given to a login-key change is not the account's."""

    status = 403
    code = "wrong_login_key"
    default_message = "current_login_key is not this account's login key."


class LoginKeyConflict(Conflict):
    code = "login_key_conflict"
    default_message = "The login key was changed by another request; try again."
