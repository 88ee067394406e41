"""Sealbox device side: the SDK an app embeds, and the device command lines.

Everything sensitive happens here, on the device: keys are made and kept
here, data is encrypted here, and only ciphertext and public keys leave.
This package holds only what runs on a device: the SDK, the age library
(``client_sim.age``), and the device-side command lines (``age_cli``: the
age-compatible ``sealbox age``/``sealbox age-keygen``; ``device_cli``: the
simulated phone, ``sealbox device``).  It shares wire formats with the
server through ``chalicelib.wire`` and never imports the server (``app``)
or the tooling that drives one (``sealbox_tools``): the import rules are
checked by ``tests/unit/test_import_rules.py``.

The SDK is one class and its errors::

    from client_sim import Device
    phone = Device.connect("phone-home", "http://127.0.0.1:8000")
    phone.register("alice", password)

Names are imported on first use, so ``import client_sim.age`` (the age CLI)
does not pay for the SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "AlreadyRegistered",
    "BackupNotFound",
    "BlobUnavailable",
    "CardVerificationFailed",
    "ConcurrentChange",
    "ConnectionFailed",
    "ContextMismatch",
    "DecryptionFailed",
    "Device",
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
]

if TYPE_CHECKING:
    from client_sim.device import Device
    from client_sim.errors import (
        AlreadyRegistered,
        BackupNotFound,
        BlobUnavailable,
        CardVerificationFailed,
        ConcurrentChange,
        ConnectionFailed,
        ContextMismatch,
        DecryptionFailed,
        DeviceError,
        DeviceInUse,
        GroupVerificationFailed,
        IdentityChanged,
        InvalidInput,
        KdfMismatch,
        LocalStorageError,
        LogVerificationFailed,
        MemberNotFound,
        NoPrivateKey,
        NotAMember,
        NotAnAdmin,
        NotLoggedIn,
        OprfVerificationFailed,
        RedirectRefused,
        ReplyTooLarge,
        RetiredKeyUsed,
        SenderMismatch,
        ServerError,
        SourceChanged,
        SplitView,
        StaleEpoch,
        StepUpRequired,
        StorageOriginRefused,
        StorageTransferFailed,
        TooManyAttempts,
        UnexpectedKeyEvent,
        UsernameTaken,
        UsersNotFound,
        WrongPassword,
    )


def __getattr__(name: str) -> Any:
    if name == "Device":
        from client_sim.device import Device

        return Device
    if name in __all__:
        from client_sim import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'client_sim' has no attribute {name!r}")
