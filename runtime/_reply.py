"""A one-shot reply slot: the cheapest correct way for a task to await an answer.

`ask` is on every command's path, so its wake-up must cost as little as trio
allows. A `Reply` parks the asking task with `wait_task_rescheduled` and the
answering task reschedules it directly: no channel, no `Event`, no parking
lot, no cancel scope, not even an `outcome` object per answer.

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

import trio


class Reply:
    __slots__ = ("_error", "_value", "_waiter", "abandoned", "done", "expiry", "scope", "started")

    def __init__(self) -> None:
        self.done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self.abandoned = False
        self.started = False
        self.scope: trio.CancelScope | None = None
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
            trio.lowlevel.reschedule(waiter)

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
        if not self.done:
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        else:
            await trio.lowlevel.checkpoint()
        return self._result()

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        self.abandon()
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait_uncancellable(self) -> Any:
        """Wait for the outcome even if this task is cancelled meanwhile.

        The cancellation is not lost: trio delivers it at the task's next
        checkpoint. This is a shielded wait without the cost of a scope.
        """
        if not self.done:
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(_refuse)
        return self._result()


def _refuse(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED
