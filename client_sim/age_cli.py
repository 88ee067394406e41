"""``sealbox age`` and ``sealbox age-keygen``: age-compatible command lines.

The flags, file layouts and behaviour follow the age CLI:

* ``sealbox age-keygen [--pq] [-o FILE]`` writes ``# created:``,
  ``# public key:`` and the identity line; a new ``-o`` file gets mode 0600
  and an existing one is never overwritten.  ``-y`` prints the recipients of
  an identity file.
* ``sealbox age [-e] (-r RECIPIENT | -R FILE | -i FILE)... [-a] [-o OUT] [IN]``,
  ``sealbox age -p [-a] [-o OUT] [IN]`` and
  ``sealbox age -d [-i FILE]... [-o OUT] [IN]``.  ``IN`` and ``OUT`` default
  to stdin and stdout (``-`` names them too).

Failures print one line, ``sealbox: error: ...``, and exit with status 1.
With ``-o``, output goes to a temporary file in the same directory that is
renamed into place only on success, so nothing partial is ever left there.
Passphrases come from the terminal (no echo; asked twice when encrypting)
or, for scripts, from the ``SEALBOX_PASSPHRASE`` environment variable.

This module is the commands' logic and imports no command-line framework:
:mod:`client_sim.age_click` declares them for click (help, every spelling
of every flag, usage errors), and :func:`run_age_fast` runs ``sealbox age``
without importing click at all when the arguments are plain ones
(``sealbox_tools.launcher``; start-up is most of what a small file costs).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, NoReturn, cast

from client_sim import age
from client_sim.age import Stanza
from client_sim.age._keys import MAX_KEY_FILE_SIZE
from client_sim.files import atomic_output, umask_mode

__all__ = ["parse_age_args", "run_age", "run_age_fast", "run_age_keygen"]

PASSPHRASE_ENV = "SEALBOX_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
_COPY_SIZE = 64 * 1024


class _CLIError(Exception):
    """A failure reported as ``sealbox: error: <message>``."""


def _fail(message: str) -> NoReturn:
    raise _CLIError(message)


def _report(message: str) -> NoReturn:
    # What click.echo(..., err=True) did: one line on stderr, flushed.
    sys.stderr.write(f"sealbox: error: {message}\n")
    sys.stderr.flush()
    sys.exit(1)


# --- input and output ---------------------------------------------------------------


@contextlib.contextmanager
def _open_input(path: str | None) -> Iterator[BinaryIO]:
    if path is None or path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        _fail(f"failed to open input file {path!r}: {exc.strerror}")
    with handle:
        yield handle


@contextlib.contextmanager
def _open_output(path: str | None) -> Iterator[BinaryIO]:
    """Stdout, or a temporary file next to ``path`` renamed into place only
    when the block finishes without an exception."""
    if path is None or path == "-":
        stream = sys.stdout.buffer
        yield stream
        stream.flush()
        return
    # The mode a plain open() would give (a private 0600 file would surprise
    # users); not fsynced, like age's own -o, to keep the CLI's throughput.
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(atomic_output(path, mode=umask_mode(), durable=False))
        except OSError as exc:
            _fail(f"failed to create output file {path!r}: {exc.strerror}")
        yield handle


@contextlib.contextmanager
def _behind(dst: BinaryIO) -> Iterator[BinaryIO]:
    """``dst`` written from a second thread, when it is a file or a pipe.

    Sealing or opening the next chunks overlaps with writing the last ones
    (both run outside the global lock; whole-process ``sealbox age`` is
    compared with Go's age in bench.age_throughput).  Encrypting, the age
    writer seals into the buffers WriteBehind lends (``age.BatchSink``).  The same errors
    surface, at the latest when the block ends; leaving the block with an
    exception drops what was not written (the output is discarded then).
    """
    from client_sim.pipeline import WriteBehind, write_behind

    out = write_behind(dst)
    if not isinstance(out, WriteBehind):
        yield dst
        return
    with out:
        # The age writer takes a binary file; WriteBehind has its write and flush.
        yield cast(BinaryIO, out)


def _stdout_is_terminal(path: str | None) -> bool:
    return (path is None or path == "-") and sys.stdout.buffer.isatty()


# --- passphrases ------------------------------------------------------------------


def _read_passphrase(*, confirm: bool) -> str:
    """From SEALBOX_PASSPHRASE, else from the terminal without echo."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is not None:
        if not from_env:
            _fail(f"{PASSPHRASE_ENV} is set but empty")
        return from_env
    try:
        # getpass falls back to reading stdin when there is no terminal,
        # which would eat the input file: make sure a terminal exists first.
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        _fail(f"no terminal to read a passphrase from; set {PASSPHRASE_ENV}")
    import getpass  # only here: a plain `sealbox age -r` never asks (start-up)

    passphrase = getpass.getpass("Enter passphrase: ")
    if not passphrase:
        _fail("empty passphrase")
    if confirm and getpass.getpass("Confirm passphrase: ") != passphrase:
        _fail("passphrases didn't match")
    return passphrase


class _PromptingScryptIdentity:
    """A passphrase identity that asks for the passphrase only when the file
    actually has a scrypt stanza (so ``-d`` without ``-i`` works like age)."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes:
        if not any(s.type == "scrypt" for s in stanzas):
            raise age.NoIdentityMatch
        identity = age.ScryptIdentity(_read_passphrase(confirm=False))
        return identity.unwrap(stanzas)


# --- key files -----------------------------------------------------------------------


def _read_text(path: str, what: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read(MAX_KEY_FILE_SIZE + 1)
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"failed to read {what} {path!r}: {getattr(exc, 'strerror', None) or exc}")


def _identities_from(paths: Sequence[str]) -> list[age.X25519Identity | age.HybridIdentity]:
    identities: list[age.X25519Identity | age.HybridIdentity] = []
    for path in paths:
        try:
            identities += age.parse_identities_file(_read_text(path, "identity file"))
        except age.InvalidKey as exc:
            _fail(f"identity file {path!r}: {exc}")
    return identities


def _recipients_from(
    recipients: Sequence[str], recipient_files: Sequence[str]
) -> list[age.X25519Recipient | age.HybridRecipient]:
    out: list[age.X25519Recipient | age.HybridRecipient] = []
    for text in recipients:
        try:
            out.append(age.parse_recipient(text))
        except age.InvalidKey as exc:
            _fail(f"invalid recipient {text!r}: {exc}")
    for path in recipient_files:
        try:
            out += age.parse_recipients_file(_read_text(path, "recipients file"))
        except age.InvalidKey as exc:
            _fail(f"recipients file {path!r}: {exc}")
    return out


# --- sealbox age ----------------------------------------------------------------------


def run_age(
    encrypt_flag: bool,
    decrypt_flag: bool,
    output: str | None,
    armor: bool,
    passphrase: bool,
    recipients: tuple[str, ...],
    recipient_files: tuple[str, ...],
    identity_files: tuple[str, ...],
    input_path: str | None,
) -> None:
    """``sealbox age`` with parsed arguments (the parameters of its click command).

    Returns on success; every failure prints one ``sealbox: error:`` line
    and raises ``SystemExit(1)``.
    """
    try:
        if encrypt_flag and decrypt_flag:
            _fail("-e/--encrypt can't be used with -d/--decrypt")
        if decrypt_flag:
            _decrypt(
                output, armor, passphrase, recipients, recipient_files, identity_files, input_path
            )
        else:
            _encrypt(
                output, armor, passphrase, recipients, recipient_files, identity_files, input_path
            )
    except _CLIError as exc:
        _report(str(exc))
    except age.NoIdentityMatch:
        _report("no identity matched any of the recipients")
    except age.DecryptionError:
        _report("decryption failed: the file is damaged, altered, or not an age file")
    except OSError as exc:
        _report(f"i/o error: {exc.strerror or exc}")


# --- sealbox age without click ------------------------------------------------------

# The flags of the click command (client_sim.age_click), by spelling.
_FLAGS = {
    "-e": "encrypt_flag",
    "--encrypt": "encrypt_flag",
    "-d": "decrypt_flag",
    "--decrypt": "decrypt_flag",
    "-a": "armor",
    "--armor": "armor",
    "-p": "passphrase",
    "--passphrase": "passphrase",
}
_SINGLE = {"-o": "output", "--output": "output"}
_MULTIPLE = {
    "-r": "recipients",
    "--recipient": "recipients",
    "-R": "recipient_files",
    "--recipients-file": "recipient_files",
    "-i": "identity_files",
    "--identity": "identity_files",
}


def parse_age_args(argv: Sequence[str]) -> dict[str, Any] | None:
    """The parameters click would give ``sealbox age argv``, or None.

    None means "ask click": help, ``--``, an unknown option, a flag given a
    value, a missing value, or a second positional argument.  For anything
    else the result equals the click command's parameters (a property test
    holds the two parsers together); like click, an option's value is the
    next argument whatever it looks like, short flags combine (``-da``), a
    short option takes the rest of its cluster as its value (``-oout``), a
    long one may use ``=``, a repeated ``-o`` keeps the last value, and
    ``-`` is an ordinary argument.
    """
    params: dict[str, Any] = {
        "encrypt_flag": False,
        "decrypt_flag": False,
        "output": None,
        "armor": False,
        "passphrase": False,
        "input_path": None,
    }
    lists: dict[str, list[str]] = {name: [] for name in set(_MULTIPLE.values())}
    args = list(argv)
    index = 0

    def take(name: str, value: str) -> None:
        if name in lists:
            lists[name].append(value)
        else:
            params[name] = value

    while index < len(args):
        arg = args[index]
        index += 1
        if arg in ("-h", "--help", "--"):
            return None
        if arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if name in _FLAGS and not equals:
                params[_FLAGS[name]] = True
                continue
            target = _SINGLE.get(name) or _MULTIPLE.get(name)
            if target is None:
                return None
            if not equals:
                if index >= len(args):
                    return None
                value = args[index]
                index += 1
            take(target, value)
            continue
        if arg.startswith("-") and arg != "-":
            for position in range(1, len(arg)):
                short = "-" + arg[position]
                if short in _FLAGS:
                    params[_FLAGS[short]] = True
                    continue
                target = _SINGLE.get(short) or _MULTIPLE.get(short)
                if target is None:
                    return None
                value = arg[position + 1 :]
                if not value:
                    if index >= len(args):
                        return None
                    value = args[index]
                    index += 1
                take(target, value)
                break
            continue
        if params["input_path"] is not None:
            return None
        params["input_path"] = arg
    params.update({name: tuple(values) for name, values in lists.items()})
    return params


def run_age_fast(argv: Sequence[str]) -> int | None:
    """Run ``sealbox age argv`` without click; None when click must parse it.

    Returns the exit status (0, or 1 after the one-line error).  Like
    click's standalone mode, an interrupt or EOF on a prompt prints
    ``Aborted!`` and returns 1.
    """
    params = parse_age_args(argv)
    if params is None:
        return None
    try:
        run_age(**params)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\nAborted!\n")
        sys.stderr.flush()
        return 1
    return 0


def _encrypt(
    output: str | None,
    armor: bool,
    passphrase: bool,
    recipients: tuple[str, ...],
    recipient_files: tuple[str, ...],
    identity_files: tuple[str, ...],
    input_path: str | None,
) -> None:
    if passphrase and (recipients or recipient_files or identity_files):
        _fail("-p/--passphrase can't be combined with -r/-R/-i")
    if not armor and _stdout_is_terminal(output):
        _fail("refusing to output binary to the terminal. Did you mean to use -a/--armor?")
    targets: list[age.Recipient]
    if passphrase:
        targets = [age.ScryptRecipient(_read_passphrase(confirm=True))]
    else:
        targets = list(_recipients_from(recipients, recipient_files))
        targets += [i.recipient() for i in _identities_from(identity_files)]
        if not targets:
            _fail("missing recipients: use -r, -R, -i or -p")
    with _open_input(input_path) as src, _open_output(output) as dst, _behind(dst) as out:
        try:
            writer = age.encrypt_writer(out, targets, armor=armor)
        except ValueError as exc:
            _fail(str(exc))
        with writer:
            writer.write_from(src)


def _decrypt(
    output: str | None,
    armor: bool,
    passphrase: bool,
    recipients: tuple[str, ...],
    recipient_files: tuple[str, ...],
    identity_files: tuple[str, ...],
    input_path: str | None,
) -> None:
    if armor:
        _fail("-a/--armor can't be used with -d/--decrypt (armor is detected)")
    if passphrase:
        _fail("-p/--passphrase can't be used with -d/--decrypt (it is detected)")
    if recipients or recipient_files:
        _fail("-r/-R can't be used with -d/--decrypt")
    identities: list[age.Identity] = list(_identities_from(identity_files))
    if not identities:
        identities = [_PromptingScryptIdentity()]
    with _open_input(input_path) as src, _open_output(output) as dst:
        reader = age.decrypt_reader(src, identities)
        with _behind(dst) as out:
            while chunk := reader.read1(_COPY_SIZE):
                out.write(chunk)


# --- sealbox age-keygen --------------------------------------------------------------


def _created_line() -> str:
    import datetime  # only age-keygen needs it (start-up of `sealbox age`)

    now = datetime.datetime.now().astimezone().replace(microsecond=0)
    stamp = now.isoformat()
    if now.utcoffset() == datetime.timedelta(0):
        stamp = stamp.removesuffix("+00:00") + "Z"
    return f"# created: {stamp}"


def run_age_keygen(pq: bool, output: str | None, convert: bool, input_path: str | None) -> None:
    """``sealbox age-keygen`` with parsed arguments (see :mod:`client_sim.age_click`).

    Returns on success; every failure prints one ``sealbox: error:`` line
    and raises ``SystemExit(1)``.
    """
    try:
        if convert:
            if pq:
                _fail("--pq can't be used with -y")
            identities = _identities_from([input_path or "-"])
            text = "".join(f"{i.recipient()}\n" for i in identities)
            _write_new_or_stdout(output, text, mode=0o666)
            return
        if input_path is not None:
            _fail("an input file is only accepted with -y")
        identity: age.X25519Identity | age.HybridIdentity = (
            age.HybridIdentity.generate() if pq else age.X25519Identity.generate()
        )
        recipient = str(identity.recipient())
        text = f"{_created_line()}\n# public key: {recipient}\n{identity.secret_string()}\n"
        _write_new_or_stdout(output, text, mode=0o600)
        if output is not None or not sys.stdout.isatty():
            sys.stderr.write(f"Public key: {recipient}\n")
            sys.stderr.flush()
    except _CLIError as exc:
        _report(str(exc))


def _write_new_or_stdout(output: str | None, text: str, *, mode: int) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        # O_EXCL: never overwrite an existing key file (age-keygen refuses too).
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        _fail(f"output file {output!r} exists")
    except OSError as exc:
        _fail(f"failed to open output file {output!r}: {exc.strerror}")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
