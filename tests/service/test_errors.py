"""One error tree: the class decides the HTTP status, the exit code and the message shown."""

from __future__ import annotations

import re

import pytest

from hostsmith.actors import errors
from hostsmith.actors.errors import (
    BodyTooLarge,
    ConfigError,
    DataDirInUse,
    HostFactoryError,
    HostsmithError,
    InternalError,
    InvalidInput,
    PermanentProviderError,
    ProviderError,
    Refused,
    TemplateError,
    TransientProviderError,
    Unavailable,
    UnknownCommand,
    as_hostsmith_error,
)
from hostsmith.actors.hostfactory import COMMANDS, decode
from hostsmith.runtime import AskTimeout, ConflictError, PersistFailed, Rejected, StoreOpenError
from tests.support.daemon import hf


def every_error_class() -> set[type[HostsmithError]]:
    found: set[type[HostsmithError]] = set()
    todo: list[type[HostsmithError]] = [HostsmithError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_has_one_status_and_one_exit_code() -> None:
    by_status_and_exit_code = {
        (500, 2): {HostsmithError, ConfigError, TemplateError, DataDirInUse},
        (400, 1): {HostFactoryError, InvalidInput, Refused},
        (404, 1): {UnknownCommand},
        (413, 1): {BodyTooLarge},
        (503, 1): {Unavailable},
        (502, 1): {ProviderError, TransientProviderError, PermanentProviderError},
        (500, 1): {InternalError},
    }
    found: dict[tuple[int, int], set[type[HostsmithError]]] = {}
    for cls in every_error_class():
        found.setdefault((cls.http_status, cls.exit_code), set()).add(cls)
    assert found == by_status_and_exit_code
    assert set(errors.__all__) >= {cls.__name__ for cls in every_error_class()}


def test_an_unknown_command_is_an_error_never_a_default_answer() -> None:
    with pytest.raises(
        UnknownCommand, match=r"^unknown command 'getTemplates': use one of getAvailableTemplates, "
    ):
        decode("getTemplates", b"{}")
    status, answer = hf("getTemplates", {})
    assert status == 1
    assert answer == {"message": UnknownCommand("getTemplates", COMMANDS).message}


def test_malformed_json_and_input_that_does_not_fit_are_told_apart() -> None:
    with pytest.raises(InvalidInput, match=r"^malformed JSON for requestMachines: "):
        decode("requestMachines", b"{not json")
    with pytest.raises(
        InvalidInput, match=r"^invalid input for requestMachines: .* `\$.template`$"
    ):
        decode("requestMachines", b'{"template": 3}')


@pytest.mark.parametrize(
    ("raised", "expected", "message"),
    [
        (Rejected("no capacity left"), Refused, r"^no capacity left$"),
        (
            ConflictError("template-T", 1, 2),
            Unavailable,
            r"^requestMachines was not applied: stream 'template-T' is at version 2, not the "
            r"expected 1: .*it is safe to send it again$",
        ),
        (
            AskTimeout("template-T", 5.0),
            Unavailable,
            r"^requestMachines did not finish in time \(template-T did not answer within 5s\)\. "
            r"hostsmith is overloaded; it is safe to send it again$",
        ),
        (
            PersistFailed("request-1", OSError(28, "No space left on device")),
            Unavailable,
            r"^requestMachines was not recorded: OSError: \[Errno 28\] No space left on device\. "
            r"hostsmith's event store failed; it is safe to send it again$",
        ),
        (StoreOpenError("bad file"), Unavailable, r"^requestMachines failed: bad file$"),
        (KeyError("x"), InternalError, r"^internal error in requestMachines: KeyError: 'x'$"),
        (
            ExceptionGroup("wrapped by a nursery", [Rejected("no capacity left")]),
            Refused,
            r"^no capacity left$",
        ),
    ],
)
def test_engine_errors_become_the_branch_that_says_what_they_mean(
    raised: Exception, expected: type[HostsmithError], message: str
) -> None:
    error = as_hostsmith_error(raised, "requestMachines")
    assert type(error) is expected
    assert re.match(message, error.message), error.message
    assert error.message == str(error)


def test_a_secret_in_a_message_is_masked_once_for_every_front_end() -> None:
    error = PermanentProviderError(
        "denied for AKIAABCDEFGHIJKLMNOP with aws_secret_access_key=abcdefgh1234"
    )
    assert "AKIAABCDEFGHIJKLMNOP" not in error.message
    assert "abcdefgh1234" not in error.message
    assert error.message == "denied for AKIA************ with aws_secret_access_key=***"
