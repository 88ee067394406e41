"""``sealbox device group …``: the group verbs of the device command line.

Split from :mod:`client_sim.device_cli` (which registers them) by subject;
they share its options object, error reporting and sender display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from client_sim.device_cli import (
    _CONTEXT_HELP,
    _echo_verified,
    _Options,
    _reported,
)

# The same options object the device command puts on the context.
pass_options = click.make_pass_decorator(_Options)


@click.group("group")
def group_command() -> None:
    """Groups: create, change membership, and encrypt or decrypt for a group.

    Every membership change is a new epoch signed by this device (an admin)
    and verified by every member; removed members can't open what is sealed
    after. Group content is a sealed age file with one recipient.
    """


def _echo_group(info: Any) -> None:
    click.echo(f"group: {info.group_id}")
    click.echo(f"epoch: {info.epoch}")
    click.echo(f"members: {' '.join(info.members)}")
    click.echo(f"admins: {' '.join(info.admins)}")


@group_command.command("create")
@click.option("--member", "members", multiple=True, help="A member identity (repeat).")
@click.option("--admin", "admins", multiple=True, help="A member who is also an admin.")
@pass_options
@_reported
def group_create(options: _Options, members: tuple[str, ...], admins: tuple[str, ...]) -> None:
    """Create a group of yourself (an admin) and the members; print its id."""
    group = options.device().create_group([*members, *admins], admins=admins)
    click.echo(group.group_id)


@group_command.command("show")
@click.argument("group_id")
@pass_options
@_reported
def group_show(options: _Options, group_id: str) -> None:
    """Fetch and verify the group's epochs; print its epoch, members and admins."""
    _echo_group(options.device().group(group_id).info())


@group_command.command("ls")
@pass_options
@_reported
def group_ls(options: _Options) -> None:
    """List the groups you are a member of."""
    for info in options.device().list_groups():
        click.echo(f"{info.group_id} epoch {info.epoch}")


@group_command.command("add")
@click.argument("group_id")
@click.argument("identities", nargs=-1, required=True)
@click.option("--admin", is_flag=True, help="Add them as admins.")
@pass_options
@_reported
def group_add(options: _Options, group_id: str, identities: tuple[str, ...], admin: bool) -> None:
    """Add members (they read what is sealed from the new epoch on)."""
    _echo_group(options.device().group(group_id).add_members(identities, admin=admin))


@group_command.command("remove")
@click.argument("group_id")
@click.argument("identities", nargs=-1, required=True)
@pass_options
@_reported
def group_remove(options: _Options, group_id: str, identities: tuple[str, ...]) -> None:
    """Remove members (nothing sealed from the new epoch on opens for them)."""
    _echo_group(options.device().group(group_id).remove_members(identities))


@group_command.command("share-history")
@click.argument("group_id")
@click.argument("member")
@click.option("--from", "from_epoch", type=int, required=True, help="First epoch to share.")
@click.option("--to", "to_epoch", type=int, default=None, help="Last (default: the previous).")
@pass_options
@_reported
def group_share_history(
    options: _Options, group_id: str, member: str, from_epoch: int, to_epoch: int | None
) -> None:
    """Share past epochs with a member (by default members read no history)."""
    first, last = (
        options.device()
        .group(group_id)
        .share_history(member, from_epoch=from_epoch, to_epoch=to_epoch)
    )
    click.echo(f"shared epochs {first} to {last} with {member}")


@group_command.command("leave")
@click.argument("group_id")
@pass_options
@_reported
def group_leave(options: _Options, group_id: str) -> None:
    """Leave the group."""
    options.device().group(group_id).leave()
    click.echo("left the group")


@group_command.command("encrypt")
@click.argument("group_id")
@click.argument("src", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--context", default=None, help=_CONTEXT_HELP)
@pass_options
@_reported
def group_encrypt(
    options: _Options, group_id: str, src: Path, dst: Path, context: str | None
) -> None:
    """Sign SRC and encrypt it for the group's current epoch into DST
    (in constant memory; DST appears only when complete)."""
    options.device().group(group_id).encrypt_file(src, dst, context=context)


@group_command.command("decrypt")
@click.argument("group_id")
@click.argument("src", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--context", default=None, help="Refuse data not sealed with this context.")
@pass_options
@_reported
def group_decrypt(
    options: _Options, group_id: str, src: Path, dst: Path, context: str | None
) -> None:
    """Decrypt group content SRC into DST and print the verified sender."""
    from client_sim.files import atomic_output

    opened = options.device().group(group_id).decrypt(src.read_bytes(), context=context)
    with atomic_output(dst) as out:
        out.write(opened.plaintext)
    _echo_verified(opened.sender)


@group_command.command("export-identity")
@click.argument("group_id")
@click.option("--epoch", type=int, default=None, help="An epoch you hold (default: current).")
@pass_options
@_reported
def group_export_identity(options: _Options, group_id: str, epoch: int | None) -> None:
    """Print the epoch's age identity (it IS the key: for age-tool interop and audits)."""
    click.echo(options.device().group(group_id).export_epoch_identity(epoch))
