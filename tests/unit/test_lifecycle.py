"""The one state-machine helper (chalicelib.services.lifecycle), on a toy table
and on the three lifecycles built with it."""

from __future__ import annotations

import contextlib
import enum
import itertools

import pytest

from chalicelib.services import backups, cards
from chalicelib.services.blobs import model as blob_model
from chalicelib.services.lifecycle import InvalidTransition, Lifecycle


class Door(enum.Enum):
    OPEN = "open"
    SHUT = "shut"
    GONE = "gone"


class Act(enum.Enum):
    INSTALL = "install"
    OPEN = "open"
    SHUT = "shut"
    REMOVE = "remove"
    PAINT = "paint"  # in no row of the table


TABLE = {
    (None, Act.INSTALL): Door.SHUT,
    (Door.SHUT, Act.OPEN): Door.OPEN,
    (Door.OPEN, Act.SHUT): Door.SHUT,
    (Door.OPEN, Act.REMOVE): Door.GONE,
    (Door.SHUT, Act.REMOVE): Door.GONE,
}


class InvalidDoorTransition(InvalidTransition):
    pass


@pytest.fixture
def door() -> Lifecycle[Door, Act]:
    return Lifecycle[Door, Act](TABLE)


def test_transition_follows_the_table_and_nothing_else(door: Lifecycle[Door, Act]) -> None:
    allowed = {}
    for state, act in itertools.product([None, *Door], Act):
        with contextlib.suppress(InvalidTransition):
            allowed[(state, act)] = door.transition(state, act)
    assert allowed == TABLE


def test_none_is_the_start_state_of_creation(door: Lifecycle[Door, Act]) -> None:
    assert door.transition(None, Act.INSTALL) is Door.SHUT
    with pytest.raises(InvalidTransition, match=r"^open is not allowed from none$"):
        door.transition(None, Act.OPEN)


def test_illegal_transition_raises_invalid_transition_naming_event_and_state(
    door: Lifecycle[Door, Act],
) -> None:
    with pytest.raises(InvalidTransition, match=r"^install is not allowed from gone$") as raised:
        door.transition(Door.GONE, Act.INSTALL)
    # Not a KeyError leaking from the table lookup, and no chained context.
    assert type(raised.value) is InvalidTransition
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_invalid_transition_is_both_value_and_runtime_error(door: Lifecycle[Door, Act]) -> None:
    # Cards and backups raised ValueError subclasses, blobs a RuntimeError one:
    # handlers written against either still catch the shared exception.
    with pytest.raises(ValueError, match="not allowed"):
        door.transition(Door.GONE, Act.OPEN)
    with pytest.raises(RuntimeError, match="not allowed"):
        door.transition(Door.GONE, Act.OPEN)
    assert not issubclass(InvalidTransition, KeyError)


def test_a_lifecycle_raises_the_subclass_it_names() -> None:
    door = Lifecycle[Door, Act](TABLE, error=InvalidDoorTransition)
    with pytest.raises(InvalidDoorTransition, match=r"^paint is not allowed from open$"):
        door.transition(Door.OPEN, Act.PAINT)


def test_sources_are_computed_from_the_table(door: Lifecycle[Door, Act]) -> None:
    assert door.sources(Act.INSTALL) == frozenset({None})
    assert door.sources(Act.OPEN) == frozenset({Door.SHUT})
    assert door.sources(Act.REMOVE) == frozenset({Door.OPEN, Door.SHUT})
    assert door.sources(Act.PAINT) == frozenset()
    assert isinstance(door.sources(Act.SHUT), frozenset)
    for act in Act:
        expected = {state for state, a in TABLE if a is act}
        assert door.sources(act) == expected
        for state in expected:
            door.transition(state, act)  # every source really is one


def test_the_table_is_immutable(door: Lifecycle[Door, Act]) -> None:
    with pytest.raises(TypeError):
        door.table[(Door.GONE, Act.INSTALL)] = Door.SHUT  # type: ignore[index]
    assert dict(door.table) == TABLE


def test_changing_the_mapping_passed_in_changes_nothing() -> None:
    table = dict(TABLE)
    door = Lifecycle[Door, Act](table)
    table[(Door.GONE, Act.INSTALL)] = Door.SHUT
    del table[(None, Act.INSTALL)]
    with pytest.raises(InvalidTransition):
        door.transition(Door.GONE, Act.INSTALL)
    assert door.transition(None, Act.INSTALL) is Door.SHUT
    assert door.sources(Act.INSTALL) == {None}


def test_lifecycles_have_no_instance_dict(door: Lifecycle[Door, Act]) -> None:
    # The table can't be swapped out from under the functions that use it.
    with pytest.raises(AttributeError):
        door.extra = 1  # type: ignore[attr-defined]


# --- the three lifecycles use it ---------------------------------------------------


@pytest.mark.parametrize(
    ("lifecycle", "error"),
    [
        (cards.CARD_LIFECYCLE, cards.InvalidCardTransition),
        (backups.BACKUP_LIFECYCLE, backups.InvalidBackupTransition),
        (blob_model.BLOB_LIFECYCLE, InvalidTransition),
    ],
)
def test_each_lifecycle_signals_illegal_transitions_with_the_shared_exception(
    lifecycle: Lifecycle[enum.Enum, enum.Enum], error: type[InvalidTransition]
) -> None:
    assert issubclass(error, InvalidTransition)
    events = {event for _, event in lifecycle.table}
    states = {state for state, _ in lifecycle.table} | set(lifecycle.table.values())
    illegal = [pair for pair in itertools.product(states, events) if pair not in lifecycle.table]
    assert illegal, "every shipped lifecycle forbids something"
    for state, event in illegal:
        with pytest.raises(error) as raised:
            lifecycle.transition(state, event)
        assert type(raised.value) is error
    for (state, event), after in lifecycle.table.items():
        assert lifecycle.transition(state, event) is after


def test_the_wrappers_read_the_shared_tables() -> None:
    for event in cards.CardEvent:
        assert cards.card_preconditions(event) == cards.CARD_LIFECYCLE.sources(event)
    for backup_event in backups.BackupEvent:
        assert backups.backup_preconditions(backup_event) == backups.BACKUP_LIFECYCLE.sources(
            backup_event
        )
    assert blob_model.BLOB_LIFECYCLE.sources(blob_model.Verdict.ACCEPT) == {
        blob_model.BlobState.RESERVED
    }
