"""after_response: what happens to a connection after a response, as a table.

Every combination of the inputs is listed once, with the answer the module's rules give;
the table is checked to cover all of them, so a new input or a changed rule shows here.
"""

from __future__ import annotations

import itertools

import pytest

from minihttp.eventloop.after import (
    AGAIN,
    CLOSE,
    DEPOSED,
    FINISH,
    HAND_BACK,
    LOOP,
    PARK,
    READ,
    SUSPEND,
    WORKER,
    After,
    Where,
    after_response,
)

L, D, W = LOOP, DEPOSED, WORKER
_ = None  # "any value": the answer does not depend on it

#: (where, deferred, close, buffered, may_go_on, looked) -> next step.
TABLE: list[tuple[Where, bool | None, bool | None, bool | None, bool | None, bool | None,
                  After]] = [
    # A deferred response is not finished: the leader hands the wait to the loop, anyone
    # else waits for it (whatever else is true: close and buffered wait for the response).
    (L, True, _, _, _, _, SUSPEND),
    (D, True, _, _, _, _, FINISH),
    (W, True, _, _, _, _, FINISH),
    # The handler or the server says close.
    (L, False, True, _, _, _, CLOSE),
    (D, False, True, _, _, _, CLOSE),
    (W, False, True, _, _, _, CLOSE),
    # A whole next request is buffered.
    (L, False, False, True, _, _, AGAIN),  # its turn again next round (fairness)
    (D, False, False, True, _, _, HAND_BACK),  # not a worker: the loop serves it
    (W, False, False, True, True, _, AGAIN),  # at once, on this worker
    (W, False, False, True, False, _, HAND_BACK),  # served its share: let others go first
    # Nothing buffered.
    (L, False, False, False, _, _, PARK),
    (D, False, False, False, _, _, PARK),
    (W, False, False, False, _, False, READ),  # look for the next request first
    (W, False, False, False, _, True, PARK),
]


def expand(row: tuple[object, ...]) -> list[tuple[object, ...]]:
    """The concrete input tuples a row stands for (``_`` is both False and True)."""
    choices = [(False, True) if v is None else (v,) for v in row]
    return list(itertools.product(*choices))


@pytest.mark.parametrize("row", TABLE, ids=[
    f"{w.name}-def{d}-close{c}-buf{b}-goon{g}-looked{k}-{a.name}"
    for w, d, c, b, g, k, a in TABLE])
def test_table(row: tuple[Where, bool | None, bool | None, bool | None, bool | None,
                          bool | None, After]) -> None:
    *inputs, expected = row
    for where, deferred, close, buffered, may_go_on, looked in expand(tuple(inputs)):
        got = after_response(where, deferred, close, buffered, may_go_on, looked)  # type: ignore[arg-type]
        assert got is expected, (where, deferred, close, buffered, may_go_on, looked, got)


def test_the_table_covers_every_input_exactly_once() -> None:
    every = set(itertools.product(Where, (False, True), (False, True), (False, True),
                                  (False, True), (False, True)))
    covered = [case for *inputs, _a in TABLE for case in expand(tuple(inputs))]
    assert len(covered) == len(set(covered)), "a case is listed twice"
    assert set(covered) == every, every - set(covered)


def test_defaults_are_those_of_the_loop() -> None:
    # The loop calls it with four arguments: may_go_on and looked do not matter there.
    assert after_response(LOOP, False, False, False) is PARK
    assert after_response(WORKER, False, False, True) is AGAIN
    assert after_response(WORKER, False, False, False) is READ
