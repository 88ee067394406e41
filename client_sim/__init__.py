"""Sealbox device SDK, age-compatible CLI, and device simulator.

Everything sensitive happens here, on the device: keys are made and kept
here, data is encrypted here, and only ciphertext and public keys leave.
"""

from __future__ import annotations

__all__: list[str] = []
