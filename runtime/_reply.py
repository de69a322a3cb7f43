"""A one-shot reply slot: the cheapest correct way for a task to await an answer.

`ask` is on every command's path, so its wake-up must cost as little as the
async library allows. A `Reply` parks the asking task through the runtime's
seam (`_backend.LOW`: on trio, `wait_task_rescheduled`) and the answering
task wakes it directly: no channel, no `Event`, no parking lot, no cancel
scope, not even an `outcome` object per answer.

Invariants:
- an outcome is set at most once; later `set_*` calls are ignored, so a late
  answer after a timeout, or a crash report after an answer, is harmless;
- `abandoned` is set when the asker stops waiting (deadline or cancel); the
  answering side checks it to skip work nobody waits for, and `scope` (the
  handler's cancel scope, if it has one) is cancelled so that work stops;
- `started` is set by the callee when it begins work on the message, so a
  timeout can say whether the command may have been applied.
"""

from __future__ import annotations

from typing import Any

import anyio

from hostsmith.runtime import _backend


class Reply:
    __slots__ = ("_error", "_value", "_waiter", "abandoned", "done", "expiry", "scope", "started")

    def __init__(self) -> None:
        self.done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._waiter: object | None = None  # the parked asker's handle
        self.abandoned = False
        self.started = False
        self.scope: anyio.CancelScope | None = None
        self.expiry: tuple[str, float] | None = None

    def set_value(self, value: object) -> None:
        if not self.done:
            self._value = value
            self._settle()

    def set_error(self, error: BaseException) -> None:
        if not self.done:
            self._error = error
            self._settle()

    def set_outcome(self, result: object) -> None:
        """Settle with `result`, or raise it in the waiter if it is an exception."""
        if isinstance(result, BaseException):
            self.set_error(result)
        else:
            self.set_value(result)

    def _settle(self) -> None:
        self.done = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _backend.LOW.wake(waiter)

    def abandon(self) -> None:
        """The asker gives up: stop the callee's work on this message too."""
        self.abandoned = True
        if self.scope is not None:
            self.scope.cancel()

    def _result(self) -> Any:
        error = self._error
        if error is not None:
            self._error = None  # raised once; do not keep its traceback alive
            raise error
        return self._value

    async def wait(self) -> Any:
        """Wait for the outcome and return or raise it. Cancelling the wait abandons the reply."""
        low = _backend.LOW
        if not self.done:
            self._waiter = handle = low.park()
            await low.wait(handle, self._abort)
        else:
            await low.checkpoint()
        return self._result()

    def _abort(self, _: object) -> object:
        self._waiter = None
        self.abandon()
        return _backend.ABORTED

    async def wait_uncancellable(self) -> Any:
        """Wait for the outcome even if this task is cancelled meanwhile.

        The cancellation is not lost: it is delivered once the wait is over
        (see `_backend`). On trio this is a shielded wait without the cost of
        a scope.
        """
        if not self.done:
            low = _backend.LOW
            self._waiter = handle = low.park_uncancellable()
            await low.wait_uncancellable(handle)
        return self._result()
