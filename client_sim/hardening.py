"""Password hardening on the device: Argon2id, then the server's OPRF, then the keys.

One object with one job: turn (username, password) into :class:`PasswordKeys`
that nobody holding a copy of the server's storage can check a guess
against (DESIGN invariant 9, docs/spec/passwords.md, derivation version 2):

1. stretch the password with Argon2id (as version 1 does);
2. blind ``"sealbox/v1/oprf-input" || master`` and send it to
   ``POST /v1/oprf`` -- the one request hardening adds;
3. check every evaluation the server returns against the **pinned** OPRF
   root keys (SDK configuration, never fetched from the server): the
   certificate of the account key, then the VOPRF proof.  Any failure raises
   :class:`~client_sim.errors.OprfVerificationFailed` before anything is
   derived or sent (fail closed);
4. derive the login and backup keys from ``master || OPRF output``.

The result also carries the version-1 keys and, during a rotation window,
those under the previous OPRF key, so the login can migrate the account and
older backups still open (then get re-wrapped).
"""

from __future__ import annotations

from collections.abc import Mapping

from chalicelib.wire import oprf
from chalicelib.wire.b64 import b64url_encode
from chalicelib.wire.oprf_keys import OprfAnswerError, OprfEvaluation, OprfRoots, open_evaluation
from client_sim.api import ApiClient
from client_sim.errors import OprfVerificationFailed
from client_sim.passwords import KdfParams, PasswordKeys, stretch_password

__all__ = ["PasswordHardening"]

# The server answers under its current key and, during a rotation window,
# the previous one; anything longer is not a server this SDK talks to.
MAX_EVALUATIONS = 2


class PasswordHardening:
    """Derives hardened password keys through the server's OPRF.

    Args:
        api: the API client.
        roots: the OPRF root public keys this app pins, by key version.
        kdf: the Argon2id parameters (every device of a user uses the same).
    """

    def __init__(
        self, api: ApiClient, roots: OprfRoots | Mapping[int, bytes], kdf: KdfParams
    ) -> None:
        self._api = api
        self._roots = roots if isinstance(roots, OprfRoots) else OprfRoots(dict(roots))
        self._kdf = kdf

    def __repr__(self) -> str:
        return f"PasswordHardening(pinned_versions={sorted(self._roots.roots)})"

    def derive(
        self, identity: str, password: str, device_cookie: str | None = None
    ) -> PasswordKeys:
        """The hardened keys of ``password`` (current OPRF key version), with older ones.

        Raises:
            WeakPassword, InvalidIdentity, ValueError: as the password module.
            OprfVerificationFailed: the server's answer did not verify.
            ServerError, TooManyAttempts, ConnectionFailed: from the request.
        """
        stretched = stretch_password(identity, password, self._kdf)
        private_input = stretched.oprf_input
        blind, blinded = oprf.blind(private_input, oprf.MODE_VOPRF)
        answers = self._api.evaluate_oprf(stretched.identity, b64url_encode(blinded), device_cookie)
        if not 1 <= len(answers) <= MAX_EVALUATIONS:
            raise OprfVerificationFailed("the server's OPRF answer is malformed")
        hardened: list[PasswordKeys] = []
        try:
            for answer in answers:
                evaluation = OprfEvaluation.from_json(answer)
                output = open_evaluation(
                    self._roots, stretched.identity, private_input, blind, blinded, evaluation
                )
                hardened.append(stretched.hardened(output, evaluation.key_version))
        except OprfAnswerError as exc:
            raise OprfVerificationFailed(
                f"the server's password-hardening answer did not verify ({exc}); nothing was sent"
            ) from exc
        versions = [keys.oprf_version for keys in hardened]
        if len(set(versions)) != len(versions):
            raise OprfVerificationFailed("the server answered twice under one OPRF key version")
        current = max(hardened, key=lambda keys: keys.oprf_version)
        others = (*(k for k in hardened if k is not current), stretched.version1())
        return PasswordKeys(
            identity=current.identity,
            params=current.params,
            login_key=current.login_key,
            backup_key=current.backup_key,
            oprf_version=current.oprf_version,
            others=others,
        )
