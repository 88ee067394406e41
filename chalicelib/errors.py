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


class InvalidEncoding(InvalidRequest):
    """The body is not UTF-8 (another encoding, a byte-order mark, a lone
    surrogate): the contract has one encoding, so no two parsers can read
    one request differently."""

    code = "invalid_encoding"
    default_message = "The body must be UTF-8 JSON without a byte-order mark."


class InvalidUsername(InvalidRequest):
    code = "invalid_username"
    default_message = (
        "Usernames are 3-64 characters of a-z, 0-9, '.', '_' or '-', starting and ending "
        "with a letter or digit, after NFKC normalisation."
    )


class InvalidLoginKey(InvalidRequest):
    code = "invalid_login_key"
    default_message = "login_key must be 32 bytes, base64url without padding."


class InvalidBlindedElement(InvalidRequest):
    code = "invalid_blinded_element"
    default_message = (
        "blinded_element must be a canonical ristretto255 element (32 bytes, base64url "
        "without padding) other than the identity."
    )


class InvalidOprfKeyVersion(InvalidRequest):
    code = "invalid_oprf_key_version"
    default_message = (
        "oprf_key_version must name the OPRF key version the login key was derived under."
    )


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


class RefreshTokenReused(Unauthorized):
    """A refresh token that was already exchanged was presented again.

    Refresh tokens rotate on every use, so a spent one in anybody's hands
    means two parties hold copies of one session: its whole family (every
    token rotated from the same login) is revoked, for the thief and the
    victim alike, and the device must log in again (OAuth 2.1 §4.3.1).
    """

    code = "refresh_token_reused"
    default_message = (
        "This refresh token was already used; the session has been ended. Log in again."
    )


class InvalidCredentials(SealboxError):
    """Login failed.  Same body for an unknown user and a wrong key."""

    status = 401
    code = "invalid_credentials"
    default_message = "Invalid username or login key."


class NotFound(SealboxError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class MethodNotAllowed(SealboxError):
    """The path exists, the method doesn't; ``Allow`` lists the declared ones."""

    status = 405
    code = "method_not_allowed"
    default_message = "This method is not allowed on this resource."

    def __init__(self, allow: list[str]) -> None:
        super().__init__(headers={"Allow": ", ".join(allow)})


class NotAcceptable(SealboxError):
    """A binary route asked for without ``Accept: application/octet-stream``."""

    status = 406
    code = "not_acceptable"
    default_message = "This route answers application/octet-stream: send it in Accept."


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


class OprfUnavailable(ServiceUnavailable):
    """The OPRF key can't be read from Secrets Manager right now."""

    code = "oprf_unavailable"
    default_message = "Password hardening is temporarily unavailable. Try again shortly."


class InternalError(SealboxError):
    """A bug or an unexpected state.  Logged server-side by type only."""


# --- key directory: cards, backups, login-key change ------------------------


class InvalidIdentity(InvalidRequest):
    code = "invalid_identity"
    default_message = (
        "Identities are 3-64 characters of a-z, 0-9, '.', '_' or '-', starting and ending "
        "with a letter or digit, after NFKC normalisation."
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


class InvalidBackupKdf(InvalidBackup):
    code = "invalid_backup_kdf"
    default_message = (
        "The backup's key derivation parameters are outside what devices accept "
        "(memory 8 KiB-256 MiB and at least 8 KiB per lane, 1-10 iterations, 1-8 lanes)."
    )


class VersionConflict(Conflict):
    code = "version_conflict"
    default_message = "The stored version is not the one this request expects."


class WrongLoginKey(SealboxError):
    """The current login key given to a login-key change is not the account's."""

    status = 403
    code = "wrong_login_key"
    default_message = "current_login_key is not this account's login key."


class StepUpRequired(SealboxError):
    """A destructive or identity-changing call came without a live step-up proof.

    Revoking a card, publishing a card that is not a rotation, deleting or
    replacing a key backup need more than the bearer token: a single-use
    proof from ``POST /v1/step-up`` (re-authentication with the login key)
    in the ``Sealbox-Step-Up`` header.
    """

    status = 403
    code = "step_up_required"
    default_message = (
        "This call needs a fresh step-up proof (POST /v1/step-up) in the Sealbox-Step-Up header."
    )


class LoginKeyConflict(Conflict):
    code = "login_key_conflict"
    default_message = "The login key was changed by another request; try again."


# --- blobs (/v1/blobs) -------------------------------------------------------
# Prefixed with ``Blob`` so they can't collide with other features' names.


class BlobNotOwner(SealboxError):
    """A recipient asked for an owner-only operation.  Strangers get 404."""

    status = 403
    code = "not_owner"
    default_message = "Only the owner of this blob may do this."


class InvalidBlobSize(InvalidRequest):
    code = "invalid_size"
    default_message = "size must be a positive integer number of bytes."


class InvalidRecipient(InvalidRequest):
    code = "invalid_recipient"
    default_message = (
        "recipients must be a list of identities: 3-64 characters of a-z, 0-9, '.', '_' or "
        "'-', starting and ending with a letter or digit."
    )


class TooManyRecipients(InvalidRequest):
    code = "too_many_recipients"
    default_message = "A blob can have at most 32 recipients."


class InvalidIdempotencyKey(InvalidRequest):
    code = "invalid_idempotency_key"
    default_message = "idempotency_key must be 16-128 characters of A-Z, a-z, 0-9, '_' or '-'."


class InvalidCursor(InvalidRequest):
    code = "invalid_cursor"
    default_message = "The cursor is not one this listing returned."


class BlobSizeMismatch(InvalidRequest):
    code = "size_mismatch"
    default_message = "The content's size differs from the size declared at reservation."


class InvalidBlobHeader(InvalidRequest):
    code = "invalid_header"
    default_message = "header must be one binary age v1 header, base64url without padding."


class BlobHeaderRequired(InvalidRequest):
    code = "header_required"
    default_message = "Adding recipients needs a new header that wraps the file key for them."


class NotAgeCiphertext(SealboxError):
    """Inline content that is not shaped like an age v1 file (nothing stored)."""

    status = 422
    code = "not_age_ciphertext"
    default_message = "The content is not an age v1 file; nothing was stored."


class BlobRejected(SealboxError):
    """The uploaded object failed the checks: deleted, never served."""

    status = 422
    code = "blob_rejected"
    default_message = "The upload failed the size or format check and was deleted."


class BlobTooLarge(PayloadTooLarge):
    code = "blob_too_large"
    default_message = "The blob is larger than this server accepts."


class BlobQuotaBytesExceeded(SealboxError):
    status = 413
    code = "quota_bytes_exceeded"
    default_message = "This would exceed your storage quota. Delete blobs to free space."


class BlobQuotaCountExceeded(SealboxError):
    status = 429
    code = "quota_count_exceeded"
    default_message = "You have as many blobs as your quota allows. Delete some first."


class BlobIdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    default_message = "This idempotency key was used for a different request."


class BlobVersionConflict(Conflict):
    code = "version_conflict"
    default_message = "The blob changed since it was read. Read it again and retry."


class BlobNotReady(Conflict):
    code = "blob_not_ready"
    default_message = "The blob is not ready: it has not been committed, or it was rejected."


class BlobNotReserved(Conflict):
    code = "blob_not_reserved"
    default_message = "The blob is no longer waiting for an upload."


class BlobUploadMissing(Conflict):
    code = "upload_missing"
    default_message = "Nothing has been uploaded for this blob yet."


class BlobUploadIncomplete(Conflict):
    code = "upload_incomplete"
    default_message = "Some parts of the multipart upload are missing."


class BlobUploadExists(Conflict):
    code = "upload_exists"
    default_message = "Content was already uploaded for this blob."


class BlobArmored(Conflict):
    code = "armored_blob"
    default_message = "The header of an armored blob can't be replaced; upload it in binary form."


class BlobReservationExpired(SealboxError):
    status = 410
    code = "reservation_expired"
    default_message = "The reservation expired before an upload arrived. Reserve again."


# --- groups -----------------------------------------------------------------------


class InvalidEpoch(InvalidRequest):
    code = "invalid_epoch"
    default_message = "The epoch is malformed or does not verify."


class StaleEpoch(Conflict):
    code = "stale_epoch"
    default_message = "The group has moved on: fetch its head, re-base the change and retry."


class NotAnAdmin(SealboxError):
    status = 403
    code = "not_an_admin"
    default_message = "Only an admin of the group can make this change."


class WrapsMissing(Conflict):
    code = "wraps_missing"
    default_message = "No wraps object was uploaded for this epoch and wraps id."


class WrapsMismatch(InvalidRequest):
    code = "wraps_mismatch"
    default_message = "The wraps object is not the one the epoch signs for its members."


class InvalidHistoryShare(InvalidRequest):
    code = "invalid_history_share"
    default_message = "The history share is malformed or does not verify."


class HistoryShareLimit(Conflict):
    code = "history_share_limit"
    default_message = "This member already has the most history shares a group may give one member."


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_message = "The share names someone who is not a current member with that card."
