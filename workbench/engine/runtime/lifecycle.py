"""Container states, the actions that move between them, and Docker's refusal for every other move.

    created ──start──► running ──exit/stop/kill──► exited ──start/restart──► running
                        │  ▲                          │
                  pause │  │ unpause            remove│ (force also from running/paused/restarting)
                        ▼  │                          ▼
                       paused                      removing ──► (gone)
    running/exited ──restart policy──► restarting ──start──► running        anything ──die──► dead

`transition(cid, state, action, force=...)` returns the next state or raises the error Docker gives
for that call in that state (NotModified 304 for stopping a stopped container, Conflict 409 with
Docker's wording otherwise). The container service persists the new state before acknowledging.
"""

from __future__ import annotations

import enum

from workbench.errors import Conflict, NotModified, WorkbenchError


class ContainerState(enum.Enum):
    """Docker's `State.Status` values."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"

    @property
    def is_running(self) -> bool:
        """Docker's `State.Running`: true while a process exists (paused and restarting included)."""
        return self in (ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING)


class Action(enum.Enum):
    START = "start"
    STOP = "stop"
    KILL = "kill"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    RESTART = "restart"
    REMOVE = "remove"
    EXIT = "exit"          # the monitor reported the process ended
    RESTARTING = "restarting"   # a restart policy will start it again
    DIE = "die"            # the engine gave up on it (unrecoverable)


S, A = ContainerState, Action

#: (state, action) → next state. Anything absent is refused with `_REFUSALS` (or a generic Conflict).
TRANSITIONS: dict[tuple[ContainerState, Action], ContainerState] = {
    (S.CREATED, A.START): S.RUNNING,
    (S.EXITED, A.START): S.RUNNING,
    (S.RESTARTING, A.START): S.RUNNING,
    (S.RUNNING, A.STOP): S.EXITED,
    (S.PAUSED, A.STOP): S.EXITED,
    (S.RESTARTING, A.STOP): S.EXITED,
    (S.RUNNING, A.KILL): S.EXITED,
    (S.PAUSED, A.KILL): S.EXITED,
    (S.RESTARTING, A.KILL): S.EXITED,
    (S.RUNNING, A.PAUSE): S.PAUSED,
    (S.PAUSED, A.UNPAUSE): S.RUNNING,
    (S.CREATED, A.RESTART): S.RUNNING,
    (S.RUNNING, A.RESTART): S.RUNNING,
    (S.PAUSED, A.RESTART): S.RUNNING,
    (S.EXITED, A.RESTART): S.RUNNING,
    (S.RESTARTING, A.RESTART): S.RUNNING,
    (S.CREATED, A.REMOVE): S.REMOVING,
    (S.EXITED, A.REMOVE): S.REMOVING,
    (S.DEAD, A.REMOVE): S.REMOVING,
    (S.RUNNING, A.EXIT): S.EXITED,
    (S.PAUSED, A.EXIT): S.EXITED,
    (S.RESTARTING, A.EXIT): S.EXITED,
    (S.RUNNING, A.RESTARTING): S.RESTARTING,
    (S.PAUSED, A.RESTARTING): S.RESTARTING,
    (S.EXITED, A.RESTARTING): S.RESTARTING,
    **{(s, A.DIE): S.DEAD for s in S},
}

#: With force, removal of a live container is allowed (the caller kills it first).
FORCED: dict[tuple[ContainerState, Action], ContainerState] = {
    (S.RUNNING, A.REMOVE): S.REMOVING,
    (S.PAUSED, A.REMOVE): S.REMOVING,
    (S.RESTARTING, A.REMOVE): S.REMOVING,
}

_STOPPED = (S.CREATED, S.EXITED, S.DEAD, S.REMOVING)
_MARKED = "container is marked for removal and cannot be started"

_REFUSALS: dict[tuple[ContainerState, Action], tuple[type[WorkbenchError], str]] = {
    (S.RUNNING, A.START): (NotModified, "Container already started"),
    (S.PAUSED, A.START): (Conflict, "cannot start a paused container, try unpause instead"),
    (S.REMOVING, A.START): (Conflict, _MARKED),
    (S.DEAD, A.START): (Conflict, _MARKED),
    (S.REMOVING, A.RESTART): (Conflict, _MARKED),
    (S.DEAD, A.RESTART): (Conflict, _MARKED),
    **{(s, A.STOP): (NotModified, "Container already stopped") for s in _STOPPED},
    **{(s, A.KILL): (Conflict, "Cannot kill container: {id}: Container {id} is not running") for s in _STOPPED},
    (S.PAUSED, A.PAUSE): (Conflict, "Container {id} is already paused"),
    (S.RESTARTING, A.PAUSE): (Conflict, "Container {id} is restarting, wait until the container is running"),
    **{(s, A.PAUSE): (Conflict, "Container {id} is not running") for s in _STOPPED},
    **{(s, A.UNPAUSE): (Conflict, "Container {id} is not paused") for s in S if s is not S.PAUSED},
    (S.RUNNING, A.REMOVE): (Conflict, "You cannot remove a running container {id}. Stop the container before "
                                      "attempting removal or force remove"),
    (S.PAUSED, A.REMOVE): (Conflict, "You cannot remove a paused container {id}. Unpause and then stop the "
                                     "container before attempting removal or force remove"),
    (S.RESTARTING, A.REMOVE): (Conflict, "You cannot remove a restarting container {id}. Stop the container "
                                         "before attempting removal or force remove"),
    (S.REMOVING, A.REMOVE): (Conflict, "removal of container {id} is already in progress"),
}

#: The action a target state stands for, for callers that think in targets (`check_transition`).
_ACTION_FOR_TARGET = {S.RUNNING: A.START, S.PAUSED: A.PAUSE, S.EXITED: A.STOP, S.REMOVING: A.REMOVE,
                      S.RESTARTING: A.RESTARTING, S.DEAD: A.DIE}


def transition(cid: str, state: ContainerState, action: Action, *, force: bool = False) -> ContainerState:
    """Return the state `action` leads to from `state`.

    Raises:
        NotModified: stopping a stopped container, starting a started one (Docker answers 304).
        Conflict: any other illegal call, with Docker's message.
    """
    nxt = TRANSITIONS.get((state, action))
    if nxt is None and force:
        nxt = FORCED.get((state, action))
    if nxt is not None:
        return nxt
    cls, template = _REFUSALS.get((state, action),
                                  (Conflict, f"Cannot {action.value} container {{id}} in state {state.value}"))
    raise cls(template.format(id=cid))


def check_transition(cid: str, current: ContainerState, target: ContainerState, *, force: bool = False) -> None:
    """Raise Docker's error unless the container may go from `current` to `target`.

    `target` names the action: RUNNING = start, PAUSED = pause, EXITED = stop, REMOVING = remove,
    RESTARTING = a restart policy, DEAD = die. (Unpause, kill and restart: use `transition`.)
    """
    action = _ACTION_FOR_TARGET.get(target)
    if action is None:
        raise Conflict(f"Container {cid} cannot be moved to state {target.value}")
    transition(cid, current, action, force=force)


def allowed_actions(state: ContainerState, *, force: bool = False) -> set[Action]:
    """Every action legal in `state` (for UIs and tests)."""
    out = {a for (s, a) in TRANSITIONS if s is state}
    if force:
        out |= {a for (s, a) in FORCED if s is state}
    return out
