"""One state-machine helper for every lifecycle (cards, backups, blobs).

A lifecycle is a table ``{(state, event): new_state}``; a ``None`` state
stands for "not stored yet", so creation is a row like any other.  The table
is the whole truth: :meth:`Lifecycle.transition` looks a pair up and raises
on a missing one, :meth:`Lifecycle.sources` derives from it the states an
event may start from, which is what a store's conditional write checks.
Nothing else encodes the rules, so they can't drift apart.

How an illegal transition is signalled
--------------------------------------
Before this module each lifecycle raised its own exception:
``InvalidCardTransition`` and ``InvalidBackupTransition`` (both
``ValueError``) and the blobs' ``InvalidTransition`` (a ``RuntimeError``).
None of them is a :class:`~chalicelib.errors.SealboxError`: an illegal
transition is a bug or a lost race, and the service that can tell which maps
it to a domain error itself (``CardService.revoke`` turns it into
``CardNotActive``); anything unmapped reaches the edge as a 500 logged by
type.

Now there is one exception, :class:`InvalidTransition`, and every lifecycle
raises it or a subclass, so one ``except InvalidTransition`` catches them
all.  To keep what callers, logs and tests observed:

* it derives from both ``ValueError`` and ``RuntimeError``, so every
  ``except`` that caught one of the old exceptions still catches it;
* a lifecycle may name a subclass to raise (``error=``): cards and backups
  keep ``InvalidCardTransition`` and ``InvalidBackupTransition`` as
  subclasses, so their names (which the edge logs) and every ``except``
  written against them are unchanged; blobs raise :class:`InvalidTransition`
  itself, the name they always raised;
* it is built from a message, like the exceptions it replaces, and the
  message is ``"<event> is not allowed from <state>"`` (``none`` for a
  missing state), the wording cards and backups used.  The one visible
  difference: the blob message read ``"<state> takes no <verdict> verdict"``;
  no caller, test or log reads it (the edge logs exceptions by type only).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

S = TypeVar("S", bound=enum.Enum)
E = TypeVar("E", bound=enum.Enum)


class InvalidTransition(ValueError, RuntimeError):
    """An event is not allowed from the state it happened in.

    Both bases on purpose, and the plain message constructor of the
    exceptions it replaces: see the module docstring.
    """


class Lifecycle(Generic[S, E]):
    """An immutable transition table over state enum ``S`` and event enum ``E``.

    ``table`` maps ``(state, event)`` to the state after the event; a
    ``None`` state is the "not stored yet" start of creation events.  The
    table is copied, so changing the mapping passed in afterwards changes
    nothing here.  ``error`` is the :class:`InvalidTransition` (sub)class an
    illegal transition raises.
    """

    __slots__ = ("_error", "_table")

    def __init__(
        self,
        table: Mapping[tuple[S | None, E], S],
        *,
        error: type[InvalidTransition] = InvalidTransition,
    ) -> None:
        self._table: Mapping[tuple[S | None, E], S] = MappingProxyType(dict(table))
        self._error = error

    @property
    def table(self) -> Mapping[tuple[S | None, E], S]:
        """Every allowed ``(state, event) -> new state``, read-only."""
        return self._table

    def transition(self, state: S | None, event: E) -> S:
        """The state after ``event`` happens in ``state`` (``None``: not stored).

        Raises:
            InvalidTransition: (or this lifecycle's subclass of it) the table
                has no row for ``(state, event)``.
        """
        try:
            return self._table[(state, event)]
        except KeyError:
            name = state.value if state is not None else "none"
            raise self._error(f"{event.value} is not allowed from {name}") from None

    def sources(self, event: E) -> frozenset[S | None]:
        """The states ``event`` may start from (``None`` if it creates).

        Empty when no row of the table has ``event``.
        """
        return frozenset(state for state, ev in self._table if ev is event)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._table)!r})"
