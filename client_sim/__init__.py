"""Sealbox device SDK, age-compatible CLI, and device simulator.

Everything sensitive happens here, on the device: keys are made and kept
here, data is encrypted here, and only ciphertext and public keys leave.

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
    "DecryptionFailed",
    "Device",
    "DeviceError",
    "DeviceInUse",
    "InvalidInput",
    "KdfMismatch",
    "LocalStorageError",
    "NoPrivateKey",
    "NotLoggedIn",
    "SenderMismatch",
    "ServerError",
    "SourceChanged",
    "StorageTransferFailed",
    "TooManyAttempts",
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
        DecryptionFailed,
        DeviceError,
        DeviceInUse,
        InvalidInput,
        KdfMismatch,
        LocalStorageError,
        NoPrivateKey,
        NotLoggedIn,
        SenderMismatch,
        ServerError,
        SourceChanged,
        StorageTransferFailed,
        TooManyAttempts,
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
