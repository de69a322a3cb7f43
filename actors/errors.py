"""hostsmith's errors: one tree, and what each branch means to every front end.

Every error hostsmith raises on purpose derives from `HostsmithError`. The
class, not the message, decides what a caller sees: `http_status` is the
daemon's answer, `exit_code` the status of hostsmith's own commands, and
the message (built in the constructor, redacted once here) is the
`{"message": ...}` that Host Factory shows. `hostsmith hf` always exits 1
on an error, because that is what Host Factory reads::

    HostsmithError                     500  exit 2
    ├── ConfigError                    500  exit 2   the configuration cannot be used
    │   ├── TemplateError              500  exit 2   a templates file or template cannot be used
    │   └── DataDirInUse               500  exit 2   another daemon serves the data dir
    ├── HostFactoryError               400  exit 1   a Host Factory call cannot be served
    │   ├── InvalidInput               400           malformed JSON, or fields that do not fit
    │   ├── UnknownCommand             404           not one of Host Factory's five calls
    │   ├── BodyTooLarge               413           larger than `server.max_body`
    │   └── Refused                    400           the domain said no (capacity, unknown ids)
    ├── Unavailable                    503  exit 1   nothing was recorded; safe to send again
    ├── ProviderError                  502  exit 1   a cloud call failed
    │   ├── TransientProviderError                   worth retrying
    │   └── PermanentProviderError                   not worth retrying
    └── InternalError                  500  exit 1   a bug: the message names the exception

`as_hostsmith_error` is the one place that translates what the engine
raises (a conflict that kept losing, an ask that timed out, a failed write,
a domain rejection) and unwraps trio's exception groups, so the HTTP API
and the in-process `hf` command answer the same error the same way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import msgspec

if TYPE_CHECKING:  # imported where they are needed: a Host Factory script loads this module
    from hostsmith.runtime import AskTimeout, ConflictError, PersistFailed

__all__ = [
    "BodyTooLarge",
    "ConfigError",
    "DataDirInUse",
    "HostFactoryError",
    "HostsmithError",
    "InternalError",
    "InvalidInput",
    "PermanentProviderError",
    "ProviderError",
    "Refused",
    "TemplateError",
    "TransientProviderError",
    "Unavailable",
    "UnknownCommand",
    "as_hostsmith_error",
    "redact",
]


class HostsmithError(Exception):
    """Root of every error hostsmith raises on purpose."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 2

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(HostsmithError):
    """The configuration cannot be used; the message names the key and why."""


class TemplateError(ConfigError):
    """A templates file, or one template in it, cannot be used."""


class DataDirInUse(ConfigError):
    """Another hostsmith process holds the data dir: the message names it and what to do."""


class HostFactoryError(HostsmithError):
    """A Host Factory call that cannot be served; the message is what Host Factory shows."""

    http_status = 400
    exit_code = 1


class InvalidInput(HostFactoryError):
    def __init__(self, command: str, error: msgspec.DecodeError) -> None:
        # msgspec raises ValidationError (a DecodeError) for JSON that parsed
        # but does not fit; anything else is JSON that did not parse at all.
        kind = "invalid input" if isinstance(error, msgspec.ValidationError) else "malformed JSON"
        super().__init__(f"{kind} for {command}: {error}")


class UnknownCommand(HostFactoryError):
    http_status = 404

    def __init__(self, command: str, known: tuple[str, ...]) -> None:
        self.command = command
        super().__init__(f"unknown command {command!r}: use one of {', '.join(known)}")


class BodyTooLarge(HostFactoryError):
    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than the limit of {limit} bytes")


class Refused(HostFactoryError):
    """The domain refused the call: an unknown template, no capacity left, a bad count."""


class Unavailable(HostsmithError):
    """The call was not applied, for a reason that passes: sending it again is safe."""

    http_status = 503
    exit_code = 1

    @classmethod
    def contended(cls, command: str, contention: ConflictError) -> Unavailable:
        return cls(
            f"{command} was not applied: {contention}. Nothing was recorded; "
            "it is safe to send it again"
        )

    @classmethod
    def overloaded(cls, command: str, slow: AskTimeout) -> Unavailable:
        return cls(
            f"{command} did not finish in time ({slow}). hostsmith is overloaded; "
            "it is safe to send it again"
        )

    @classmethod
    def not_recorded(cls, command: str, failure: PersistFailed) -> Unavailable:
        cause = f"{type(failure.cause).__name__}: {failure.cause}"
        return cls(
            f"{command} was not recorded: {cause}. hostsmith's event store failed; "
            "it is safe to send it again"
        )


class ProviderError(HostsmithError):
    """A cloud call failed; `transient` says whether retrying may help."""

    http_status = 502
    exit_code = 1
    transient: ClassVar[bool] = False


class TransientProviderError(ProviderError):
    transient = True


class PermanentProviderError(ProviderError):
    transient = False


class InternalError(HostsmithError):
    """Something failed that hostsmith did not expect: a bug to report."""

    exit_code = 1

    def __init__(self, command: str, failure: BaseException) -> None:
        super().__init__(f"internal error in {command}: {type(failure).__name__}: {failure}")


def as_hostsmith_error(error: BaseException, command: str) -> HostsmithError:
    """The error a caller should see for `error`, raised while serving `command`.

    A group of one (trio wraps what escapes a nursery) is looked through; an
    engine error becomes the branch of the tree that says what it means to
    the caller; anything else is an `InternalError`.
    """
    from hostsmith.runtime import AskTimeout, ConflictError, PersistFailed, Rejected, RuntimeFault

    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, HostsmithError):
        return error
    if isinstance(error, Rejected):
        return Refused(str(error))
    if isinstance(error, ConflictError):  # another writer kept winning
        return Unavailable.contended(command, error)
    if isinstance(error, AskTimeout):  # a hot aggregate's queue is long
        return Unavailable.overloaded(command, error)
    if isinstance(error, PersistFailed):  # the actor's state did not move
        return Unavailable.not_recorded(command, error)
    if isinstance(error, RuntimeFault):
        return Unavailable(f"{command} failed: {error}")
    return InternalError(command, error)


_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")
_SECRET = re.compile(
    r"(?i)\b(aws_secret_access_key|secret_?access_?key|aws_session_token|session_?token"
    r"|x-amz-security-token|security_?token)(\W{1,3})([A-Za-z0-9/+=]{8,})"
)


def redact(text: str) -> str:
    """Mask AWS access key ids, and any secret key or token written as `name=value`.

    Every message hostsmith shows passes through here: error answers, CLI
    errors and log lines.
    """
    if "AKIA" in text or "ASIA" in text:
        text = _ACCESS_KEY.sub(lambda m: m.group(1) + "*" * 12, text)
    lowered = text.lower()
    if "key" not in lowered and "token" not in lowered:  # every name `_SECRET` knows has one
        return text  # (most lines: the regex costs a log line a fifth of its time)
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
