"""The state table and Docker's refusals, word for word."""

from __future__ import annotations

import pytest

from workbench.engine.runtime.lifecycle import (
    Action,
    ContainerState,
    allowed_actions,
    check_transition,
    transition,
)
from workbench.errors import Conflict, NotModified

S, A = ContainerState, Action
CID = "4f2b" * 16


@pytest.mark.parametrize(("state", "action", "nxt"), [
    (S.CREATED, A.START, S.RUNNING),
    (S.EXITED, A.START, S.RUNNING),
    (S.RESTARTING, A.START, S.RUNNING),
    (S.RUNNING, A.STOP, S.EXITED),
    (S.PAUSED, A.STOP, S.EXITED),
    (S.RUNNING, A.PAUSE, S.PAUSED),
    (S.PAUSED, A.UNPAUSE, S.RUNNING),
    (S.PAUSED, A.KILL, S.EXITED),
    (S.RUNNING, A.EXIT, S.EXITED),
    (S.RUNNING, A.RESTARTING, S.RESTARTING),
    (S.EXITED, A.REMOVE, S.REMOVING),
    (S.CREATED, A.REMOVE, S.REMOVING),
    (S.RUNNING, A.DIE, S.DEAD),
])
def test_allowed(state: ContainerState, action: Action, nxt: ContainerState) -> None:
    assert transition(CID, state, action) is nxt


@pytest.mark.parametrize(("state", "action", "cls", "message"), [
    (S.EXITED, A.STOP, NotModified, "Container already stopped"),
    (S.CREATED, A.STOP, NotModified, "Container already stopped"),
    (S.RUNNING, A.START, NotModified, "Container already started"),
    (S.RUNNING, A.REMOVE, Conflict, f"You cannot remove a running container {CID}. Stop the container before "
                                    f"attempting removal or force remove"),
    (S.PAUSED, A.REMOVE, Conflict, f"You cannot remove a paused container {CID}. Unpause and then stop the "
                                   f"container before attempting removal or force remove"),
    (S.REMOVING, A.REMOVE, Conflict, f"removal of container {CID} is already in progress"),
    (S.PAUSED, A.PAUSE, Conflict, f"Container {CID} is already paused"),
    (S.EXITED, A.PAUSE, Conflict, f"Container {CID} is not running"),
    (S.RESTARTING, A.PAUSE, Conflict, f"Container {CID} is restarting, wait until the container is running"),
    (S.RUNNING, A.UNPAUSE, Conflict, f"Container {CID} is not paused"),
    (S.EXITED, A.UNPAUSE, Conflict, f"Container {CID} is not paused"),
    (S.PAUSED, A.START, Conflict, "cannot start a paused container, try unpause instead"),
    (S.DEAD, A.START, Conflict, "container is marked for removal and cannot be started"),
    (S.EXITED, A.KILL, Conflict, f"Cannot kill container: {CID}: Container {CID} is not running"),
])
def test_refused_with_dockers_words(state: ContainerState, action: Action, cls: type, message: str) -> None:
    with pytest.raises(cls) as err:
        transition(CID, state, action)
    assert type(err.value) is cls and str(err.value) == message
    assert err.value.status == (304 if cls is NotModified else 409)


def test_force_remove_of_live_containers() -> None:
    for state in (S.RUNNING, S.PAUSED, S.RESTARTING):
        with pytest.raises(Conflict):
            transition(CID, state, A.REMOVE)
        assert transition(CID, state, A.REMOVE, force=True) is S.REMOVING
    with pytest.raises(Conflict):
        transition(CID, S.REMOVING, A.REMOVE, force=True)


def test_check_transition_by_target() -> None:
    check_transition(CID, S.CREATED, S.RUNNING)
    check_transition(CID, S.RUNNING, S.PAUSED)
    with pytest.raises(Conflict, match="try unpause instead"):
        check_transition(CID, S.PAUSED, S.RUNNING)
    with pytest.raises(NotModified):
        check_transition(CID, S.EXITED, S.EXITED)
    with pytest.raises(Conflict):
        check_transition(CID, S.RUNNING, S.CREATED)


def test_every_state_has_an_exit_and_values_match_docker() -> None:
    assert [s.value for s in S] == ["created", "running", "paused", "restarting", "removing", "exited", "dead"]
    for state in S:
        assert A.DIE in allowed_actions(state)
    assert allowed_actions(S.PAUSED) >= {A.UNPAUSE, A.STOP, A.KILL}
    assert A.REMOVE in allowed_actions(S.RUNNING, force=True) and A.REMOVE not in allowed_actions(S.RUNNING)
    assert S.PAUSED.is_running and S.RESTARTING.is_running and not S.EXITED.is_running
