"""``sealbox device``: one simulated phone on the command line.

Each invocation is the app being opened once: the device's state (keystore,
session, card cache) lives under ``--home``, so consecutive commands behave
like one phone.  Passwords come from the terminal without echo, or from
``SEALBOX_PASSWORD`` (and ``SEALBOX_NEW_PASSWORD`` for ``change-password``)
in scripts.  Destructive verbs (``rotate``, ``unregister``, ``reset-backup``,
and ``backup`` when it replaces a stored backup) ask for the password again:
the server wants a step-up proof for them, not just the session.  Failures
print one line, ``sealbox: error: ...``, and exit 1; usage errors exit 2.
Output files appear only when complete and verified.

Blob storage: ``put`` signs, encrypts and uploads a file (printing its blob
id), ``get`` downloads, decrypts and verifies one, ``ls`` lists the inbox or
the outbox, ``share`` changes who may read a blob, ``rm`` deletes it.

Identity resets: when a contact's card is not the one this device pinned nor
a rotation signed by it, ``find``, ``encrypt``, ``put`` and ``share`` print a
warning with both card ids and the safety number and exit 1 without
encrypting anything.  ``trust IDENTITY CARD_ID`` accepts the new card; or
repeat the command with ``--accept-new-identity``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar
from urllib.parse import urlsplit

import click

if TYPE_CHECKING:
    from client_sim.config import SdkConfig
    from client_sim.device import Device, Sender
    from client_sim.errors import IdentityChanged

PASSWORD_ENV = "SEALBOX_PASSWORD"  # noqa: S105 - the variable's name
NEW_PASSWORD_ENV = "SEALBOX_NEW_PASSWORD"  # noqa: S105 - the variable's name
EXIT_ERROR = 1

_P = ParamSpec("_P")
_T = TypeVar("_T")


STORAGE_ORIGINS_ENV = "SEALBOX_STORAGE_ORIGINS"


@dataclass(frozen=True)
class _Options:
    home: Path
    url: str
    kdf: str
    storage_origins: tuple[str, ...] = ()
    log_key: str | None = None
    config: SdkConfig | None = None

    def device(self) -> Device:
        # Imported here: `sealbox --help` and the age verbs don't pay for the SDK.
        from client_sim.device import Device
        from client_sim.passwords import PASSWORD_KDF_SIMULATION, PASSWORD_KDF_V1

        kdf = PASSWORD_KDF_SIMULATION if self.kdf == "simulation" else PASSWORD_KDF_V1
        # The configuration file's pins, then the explicit flags on top.
        pins: dict[str, Any] = {} if self.config is None else self.config.device_options()
        pins["storage_origins"] = (*pins.get("storage_origins", ()), *self.storage_origins)
        if self.log_key is not None:
            pins["log_key"] = self.log_key
        return Device.connect(self.home, self.url, kdf=kdf, **pins)


def _fail(message: str) -> NoReturn:
    click.echo(f"sealbox: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def _reported(command: Callable[_P, _T]) -> Callable[_P, _T]:
    """Turn SDK and file-system failures into one line on stderr and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        from client_sim.errors import DeviceError, IdentityChanged, TooManyAttempts

        try:
            return command(*args, **kwargs)
        except IdentityChanged as exc:
            _warn_reset(exc, accepted=False)
            sys.exit(EXIT_ERROR)
        except TooManyAttempts as exc:
            wait = f" (retry in {exc.retry_after} s)" if exc.retry_after else ""
            _fail(f"{exc}{wait}")
        except DeviceError as exc:
            _fail(str(exc))
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")

    return wrapper


def _warn_reset(exc: IdentityChanged, *, accepted: bool) -> None:
    """The identity-reset warning, on stderr (ids and digits only: nothing secret)."""
    lines = [
        f"sealbox: WARNING: {exc.identity}'s identity changed (an identity reset, not a "
        "signed rotation)",
        f"  pinned card: {exc.old_card_id}",
        f"  new card:    {exc.new_card_id}",
        f"  safety number: {exc.safety_number or 'n/a (this device has no keys)'}",
    ]
    if accepted:
        lines.append("  --accept-new-identity: trusting the new card")
    else:
        lines += [
            f"  Compare the safety number with {exc.identity} over another channel, then run",
            # "--": a card id is base64url and may start with "-" (1 in 64).
            f"  'sealbox device trust -- {exc.identity} {exc.new_card_id}' or repeat the command",
            "  with --accept-new-identity.  Nothing was encrypted.",
        ]
    for line in lines:
        click.echo(line, err=True)


def _accepting(phone: Device, accept: bool, action: Callable[[], _T]) -> _T:
    """``action()``; with ``accept``, each identity reset it meets is trusted once, then retried."""
    from client_sim.errors import IdentityChanged

    accepted: set[str] = set()
    while True:
        try:
            return action()
        except IdentityChanged as exc:
            if not accept or exc.identity in accepted:
                raise
            _warn_reset(exc, accepted=True)
            phone.trust(exc.identity, exc.new_card_id)
            accepted.add(exc.identity)


_ACCEPT_NEW_IDENTITY = click.option(
    "--accept-new-identity",
    "accept",
    is_flag=True,
    help="Trust a contact's new card after an identity reset (compare safety numbers first).",
)


def _password(env: str, prompt: str, *, confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    entered: str = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    return entered


def _confirm_password(phone: Device) -> Device:
    """Ask for the password (``SEALBOX_PASSWORD`` in scripts): a step-up for a destructive verb."""
    phone.confirm_password(_password(PASSWORD_ENV, "Password (to confirm this change)"))
    return phone


pass_options = click.make_pass_decorator(_Options)


@click.group("device")
@click.option(
    "--home",
    required=True,
    envvar="SEALBOX_HOME",
    type=click.Path(file_okay=False, path_type=Path),
    help="This device's directory (keystore, session, card cache).",
)
@click.option(
    "--url",
    envvar="SEALBOX_URL",
    help="The backend, e.g. http://127.0.0.1:8000 (default: the --config file's url).",
)
@click.option(
    "--config",
    "config_path",
    envvar="SEALBOX_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The app's SDK trust configuration (sdk-config.json, written by `make deploy` "
    "and `sealbox local`): pins its transparency log key, OPRF root keys and storage "
    "origins.",
)
@click.option(
    "--kdf",
    type=click.Choice(["v1", "simulation"]),
    default="v1",
    show_default=True,
    help="Password derivation profile; every device of a user must use the same. "
    "'simulation' is for tests and scripts only.",
)
@click.option(
    "--storage-origin",
    "storage_origins",
    multiple=True,
    envvar=STORAGE_ORIGINS_ENV,
    metavar="ORIGIN",
    help="Where presigned transfer URLs may point, as scheme://host[:port], besides the "
    "--url origin; repeat for several (the environment variable takes a space-separated "
    "list).  sealbox local: its 'aws endpoint'.  Other URLs are refused before any "
    "connection.",
)
@click.option(
    "--log-key",
    envvar="SEALBOX_LOG_KEY",
    default=None,
    help="The backend's transparency log verifier key (as `sealbox kt init-key` printed "
    "it): every card must then be proven in the log, and login checks this identity's "
    "log entries.",
)
@click.pass_context
def device_command(
    ctx: click.Context,
    home: Path,
    url: str | None,
    config_path: Path | None,
    kdf: str,
    storage_origins: tuple[str, ...],
    log_key: str | None,
) -> None:
    """One simulated phone: register, find, encrypt, decrypt, put, get, back up, rotate."""
    from client_sim.config import ConfigError, SdkConfig
    from client_sim.errors import InvalidInput
    from client_sim.origins import parse_origin

    config = None
    if config_path is not None:
        try:
            config = SdkConfig.load(config_path)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--config") from exc
    url = url or (config.url if config is not None else None)
    if url is None:
        raise click.UsageError("give --url or --config (or SEALBOX_URL / SEALBOX_CONFIG)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter("must be an http(s) URL", param_hint="--url")
    for origin in storage_origins:
        try:
            parse_origin(origin)
        except InvalidInput as exc:
            raise click.BadParameter(str(exc), param_hint="--storage-origin") from exc
    ctx.obj = _Options(
        home=home,
        url=url,
        kdf=kdf,
        storage_origins=storage_origins,
        log_key=log_key,
        config=config,
    )


@device_command.command()
@click.argument("username")
@pass_options
@_reported
def register(options: _Options, username: str) -> None:
    """Create the account, make this device's keys and publish their card."""
    password = _password(PASSWORD_ENV, "Password", confirm=True)
    phone = options.device()
    identity = phone.register(username, password)
    click.echo(f"registered {identity} (card {phone.whoami().card_id})")


@device_command.command()
@click.argument("username")
@pass_options
@_reported
def login(options: _Options, username: str) -> None:
    """Log in; a device without keys restores them from the backup."""
    phone = options.device()
    identity = phone.login(username, _password(PASSWORD_ENV, "Password"))
    if phone.has_local_private_key():
        click.echo(f"logged in as {identity} (card {phone.whoami().card_id})")
    else:
        click.echo(f"logged in as {identity}; no private key on this device (no backup found)")


@device_command.command()
@pass_options
@_reported
def logout(options: _Options) -> None:
    """End the session; the keys stay on this device."""
    options.device().logout()
    click.echo("logged out")


@device_command.command()
@click.argument("identities", nargs=-1, required=True)
@click.option("--refresh", is_flag=True, help="Ask the directory even for cached cards.")
@_ACCEPT_NEW_IDENTITY
@pass_options
@_reported
def find(options: _Options, identities: tuple[str, ...], refresh: bool, accept: bool) -> None:
    """Print the verified active cards of IDENTITIES."""
    phone = options.device()
    found = _accepting(phone, accept, lambda: phone.find_users(identities, refresh=refresh))
    for identity, card in found.items():
        click.echo(f"{identity}\t{card.card_id}")


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _echo_verified(verified: Sender) -> None:
    """The verified sender, then what it signed: when, for whom, for what.

    Every value printed comes from the verified signature and is printable
    ASCII by the format's rules (identities, a context without spaces).
    """
    note = ""
    if verified.card_status != "active":
        # Sealed while the card was current (the SDK refuses anything
        # sealed after), but the card has since been retired.
        when = verified.status_changed_at
        since = "" if when is None else f" {_utc(when * 1000)}"
        note = f" (card {verified.card_id}, {verified.card_status}{since})"
    click.echo(f"verified sender: {verified.identity}{note}")
    if verified.sealed_at_ms is None:
        click.echo("sealed: legacy format, no signed time, readers or context")
        return
    click.echo(f"sealed at: {_utc(verified.sealed_at_ms)} (sender's clock)")
    click.echo(f"readers: {', '.join(verified.recipients or ())}")
    if verified.context:
        click.echo(f"context: {verified.context}")


_CONTEXT_HELP = "What the data is for (e.g. chat/42/msg/7), signed with it; 1-255 printable ASCII."


@device_command.command()
@click.argument("identity")
@click.argument("card_id")
@pass_options
@_reported
def trust(options: _Options, identity: str, card_id: str) -> None:
    """Trust CARD_ID, IDENTITY's active card, after an identity reset.

    Put "--" before the arguments: a card id may start with "-".
    """
    card = options.device().trust(identity, card_id)
    click.echo(f"trusted {card.identity}: card {card.card_id}")


@device_command.command()
@click.option("--to", "recipients", multiple=True, required=True, help="A recipient identity.")
@click.option("--context", default=None, help=_CONTEXT_HELP)
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@_ACCEPT_NEW_IDENTITY
@pass_options
@_reported
def encrypt(
    options: _Options,
    recipients: tuple[str, ...],
    context: str | None,
    src: Path,
    dst: Path,
    accept: bool,
) -> None:
    """Sign SRC and encrypt it to the recipients (and to yourself) into DST."""
    phone = options.device()
    _accepting(phone, accept, lambda: phone.encrypt_file(src, dst, to=recipients, context=context))


@device_command.command()
@click.option("--from", "sender", help="Refuse data not signed by this identity.")
@click.option("--context", default=None, help="Refuse data not sealed with this context.")
@click.argument("src", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@pass_options
@_reported
def decrypt(
    options: _Options, sender: str | None, context: str | None, src: Path, dst: Path
) -> None:
    """Decrypt SRC into DST and print the verified sender and what it signed."""
    _echo_verified(options.device().decrypt_file(src, dst, sender=sender, context=context))


@device_command.command()
@click.option("--to", "recipients", multiple=True, help="An identity who may read it.")
@click.argument("src", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@_ACCEPT_NEW_IDENTITY
@pass_options
@_reported
def put(options: _Options, recipients: tuple[str, ...], src: Path, accept: bool) -> None:
    """Sign SRC, encrypt it to the recipients and yourself, store it; print the blob id."""
    phone = options.device()
    info = _accepting(phone, accept, lambda: phone.upload(src, to=recipients))
    click.echo(info.blob_id)


@device_command.command()
@click.option("--from", "sender", help="Refuse a blob not signed by this identity.")
@click.argument("blob_id")
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@pass_options
@_reported
def get(options: _Options, sender: str | None, blob_id: str, dst: Path) -> None:
    """Download BLOB_ID into DST (only once verified) and print the verified
    sender and what it signed; content that doesn't belong to this blob (its
    id, owner, readers or age) is refused."""
    _echo_verified(options.device().download(blob_id, dst, sender=sender))


@device_command.command(name="ls")
@click.option(
    "--role",
    type=click.Choice(["inbox", "outbox"]),
    default="inbox",
    show_default=True,
    help="Blobs shared with you, or blobs you stored.",
)
@pass_options
@_reported
def list_command(options: _Options, role: str) -> None:
    """List blobs: id, owner, size, state, recipients (tab-separated)."""
    from client_sim.errors import ServerError

    phone = options.device()
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        # Every printed string was checked by the SDK (ids, identities and
        # states have fixed shapes), so nothing a server sends reaches the
        # terminal raw.
        page = phone.list_blobs(role, cursor=cursor)
        for item in page.items:
            readers = ",".join(item.recipients) or "-"
            click.echo(f"{item.blob_id}\t{item.owner}\t{item.size}\t{item.state}\t{readers}")
        if page.next_cursor is None:
            return
        if page.next_cursor in seen:
            # A server that repeats a cursor would keep us listing forever.
            raise ServerError.malformed("listing (a cursor came back)")
        seen.add(page.next_cursor)
        cursor = page.next_cursor


@device_command.command()
@click.option("--to", "recipients", multiple=True, help="An identity who may read it.")
@click.argument("blob_id")
@_ACCEPT_NEW_IDENTITY
@pass_options
@_reported
def share(options: _Options, recipients: tuple[str, ...], blob_id: str, accept: bool) -> None:
    """Make the recipients the readers of BLOB_ID; print its (possibly new) id.

    Any change re-seals the file as a new blob and deletes the old one,
    because the signature inside names the blob and who it was sent to.
    """
    phone = options.device()
    click.echo(_accepting(phone, accept, lambda: phone.share(blob_id, recipients)).blob_id)


@device_command.command()
@click.argument("blob_id")
@pass_options
@_reported
def rm(options: _Options, blob_id: str) -> None:
    """Delete BLOB_ID (every stored version and its metadata)."""
    options.device().delete_blob(blob_id)


@device_command.command()
@pass_options
@_reported
def backup(options: _Options) -> None:
    """Store this device's keys, sealed under the password, on the server.

    Replacing a stored backup asks for the password (step-up); creating one doesn't.
    """
    from client_sim.errors import StepUpRequired

    phone = options.device()
    try:
        version = phone.backup_private_key()
    except StepUpRequired:
        version = _confirm_password(phone).backup_private_key()
    click.echo(f"backup stored (version {version})")


@device_command.command()
@pass_options
@_reported
def restore(options: _Options) -> None:
    """Restore the keys from the backup (after login)."""
    phone = options.device()
    phone.restore_private_key(_password(PASSWORD_ENV, "Password"))
    click.echo(f"keys restored (card {phone.whoami().card_id})")


@device_command.command("change-password")
@pass_options
@_reported
def change_password(options: _Options) -> None:
    """Change the password (login and backup); other devices must log in again."""
    old = _password(PASSWORD_ENV, "Current password")
    new = _password(NEW_PASSWORD_ENV, "New password", confirm=True)
    options.device().change_password(old, new)
    click.echo("password changed")


@device_command.command()
@pass_options
@_reported
def rotate(options: _Options) -> None:
    """Make new keys and publish their card; old data stays readable.

    Asks for the password: the backup is replaced to include the new keys.
    """
    card = _confirm_password(options.device()).rotate_private_key()
    click.echo(f"rotated: card {card.card_id} (previous {card.previous_card_id})")


@device_command.command()
@pass_options
@_reported
def unregister(options: _Options) -> None:
    """Revoke this identity's card and wipe this device (the backup is kept).

    Asks for the password.
    """
    _confirm_password(options.device()).unregister()
    click.echo("card revoked; this device is wiped; the backup is kept")


@device_command.command("reset-backup")
@pass_options
@_reported
def reset_backup(options: _Options) -> None:
    """Delete the key backup from the server; asks for the password."""
    _confirm_password(options.device()).reset_private_key_backup()
    click.echo("backup deleted")


@device_command.command()
@pass_options
@_reported
def cleanup(options: _Options) -> None:
    """Delete this device's keystore and card cache (nothing on the server changes)."""
    options.device().cleanup()
    click.echo("device wiped")


@device_command.command()
@pass_options
@_reported
def whoami(options: _Options) -> None:
    """Show this device's identity, session and card."""
    status = options.device().whoami()
    if status.identity is None:
        click.echo("nobody: this device holds no account")
        return
    lines: dict[str, Any] = {
        "identity": status.identity,
        "logged in": "yes" if status.logged_in else "no",
        "card": status.card_id or "none",
        "previous cards": status.previous_cards,
    }
    for name, value in lines.items():
        click.echo(f"{name}: {value}")


# The group verbs live in their own module; registered here so `sealbox device
# group` exists wherever this group of commands is loaded.
from client_sim.device_group_cli import group_command  # noqa: E402 - needs the helpers above

device_command.add_command(group_command)
