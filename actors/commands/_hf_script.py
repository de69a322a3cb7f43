"""`hostsmith hf`: one Host Factory call, in a process of its own, paid for by what it imports.

Host Factory starts a new process for every call, and with the daemon
running the call's own work is one HTTP round trip; the interpreter's start
and the imports are the rest. So this path stands apart from the rest of
the command line: `argparse` instead of typer, one HTTP/1.0 request on a socket instead of httpx,
and the configuration (kept light for this) instead of the application.
Only a call that runs in process (no daemon) imports trio, the store and
the service, and only then.

Whatever happens, Host Factory reads JSON on stdout: the answer, or
`{"message": ...}` with exit status 1. Nothing else is ever printed there.
"""

from __future__ import annotations

import argparse
import pathlib
import socket
import sys
import urllib.parse
from typing import TYPE_CHECKING, NoReturn

import msgspec

from hostsmith.actors.errors import HostsmithError, UnknownCommand, redact
from hostsmith.actors.server import one_shot_claim
from hostsmith.actors.service import load_config

if TYPE_CHECKING:
    from hostsmith.actors.hostfactory import HostFactoryAnswer
    from hostsmith.actors.service import Config, Server

COMMANDS = (
    "getAvailableTemplates",
    "requestMachines",
    "getRequestStatus",
    "requestReturnMachines",
    "getReturnRequests",
)
"""Host Factory's five calls (`hostsmith.actors.hostfactory.COMMANDS`, pinned by a test)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        hf_fail(f"hostsmith hf: {message}")


def hf_script(arguments: list[str]) -> int:
    """Run `hostsmith hf ARGUMENTS`; print Host Factory's JSON; return the exit status."""
    parser = _Parser(prog="hostsmith hf", add_help=False)
    parser.add_argument("command")
    parser.add_argument("-f", "--file", type=pathlib.Path)
    parser.add_argument("-d", "--data")
    parser.add_argument("--url")
    parser.add_argument("-c", "--config", type=pathlib.Path)
    given = parser.parse_args(arguments)
    if given.command not in COMMANDS:
        hf_fail(UnknownCommand(given.command, COMMANDS).message)
    if given.file is not None:
        try:
            body = given.file.read_bytes()
        except OSError as error:
            hf_fail(f"cannot read input file {given.file}: {error.strerror}")
    else:
        body = (given.data or "").encode()
    try:
        settings = load_config(given.config)
    except HostsmithError as error:
        hf_fail(error.message)
    target = given.url or settings.url
    if target:
        return answer_from(target, given.command, body, settings.server)
    try:
        with one_shot_claim(settings.data_path) as daemon:
            if daemon is not None:  # the data dir's one writer is a daemon: it answers
                return answer_from(daemon.url, given.command, body, settings.server)
            result = in_process(settings, given.command, body)
    except HostsmithError as error:
        hf_fail(error.message)
    print_json(msgspec.json.encode(result))
    return 0


def answer_from(url: str, command: str, body: bytes, server: Server) -> int:
    """Send the call to the daemon at `url`; print its answer; 0 if it succeeded."""
    try:
        status, answer = post(url, f"/api/v1/{command}", body, server)
    except OSError as error:
        hf_fail(f"cannot reach the hostsmith daemon at {url}: {error}")
    print_json(answer)
    return 0 if status == 200 else 1


def post(url: str, path: str, body: bytes, server: Server) -> tuple[int, bytes]:
    """One HTTP/1.0 POST of JSON to the daemon, with its token: (status, body).

    Written on the socket because `http.client` costs this process more to
    import (its e-mail header parser, about 14 ms) than the daemon takes to
    answer. HTTP/1.0 keeps it simple and sure: the daemon closes the
    connection after its answer, so the body is whatever comes before the
    close (cut to Content-Length when there is one).
    """
    where = urllib.parse.urlsplit(url)
    host = where.hostname or "127.0.0.1"
    port = where.port or (443 if where.scheme == "https" else 80)
    lines = [f"POST {where.path.rstrip('/')}{path} HTTP/1.0", f"Host: {where.netloc}"]
    lines.append("Content-Type: application/json")
    if server.token:
        lines.append(f"Authorization: Bearer {server.token}")
    lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection((host, port), timeout=60) as plain:
        connection = (
            server.client_tls().wrap_socket(plain, server_hostname=host)
            if where.scheme == "https"
            else plain
        )
        try:
            connection.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon may have answered before reading it all (a body too large)
        received = []
        while chunk := connection.recv(65536):
            received.append(chunk)
    head, _, answer = b"".join(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split()[1])
    except (IndexError, ValueError):
        raise OSError(f"not an HTTP answer: {status_line[:80]!r}") from None
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length" and value.strip().isdigit():
            answer = answer[: int(value)]
    return status, answer


def in_process(settings: Config, command: str, body: bytes) -> HostFactoryAnswer:
    """The call served in this process, on the store, with the provider: no daemon."""
    import logging

    import trio

    from hostsmith.actors.errors import as_hostsmith_error
    from hostsmith.actors.server import configure_logging

    configure_logging(settings.log, stderr_level="warning")
    for warning in settings.warnings:  # stderr: Host Factory reads only stdout
        logging.getLogger("hostsmith.config").warning("%s", warning)
    try:
        return trio.run(_serve_one, settings, command, body)
    except Exception as failure:  # trio hands errors over in exception groups
        answered = as_hostsmith_error(failure, command)
        # One line on stderr; the traceback only at debug level (Host Factory reads stdout).
        log = logging.getLogger("hostsmith.hf")
        log.warning("%s failed: %s", command, answered.message)
        log.debug("%s failed", command, exc_info=failure)
        raise answered from None


async def _serve_one(settings: Config, command: str, body: bytes) -> HostFactoryAnswer:
    from hostsmith.actors.hostfactory import RequestAccepted, RequestStatus, decode
    from hostsmith.actors.service import answer, open_application

    async with open_application(settings, drive=False) as application:
        service = application.service
        given = decode(command, body)
        if isinstance(given, RequestStatus):
            await service.advance(given.request_ids())
        result = await answer(service, command, body)
        if isinstance(result, RequestAccepted) and command == "requestMachines":
            await service.advance([result.request_id])
        return result


def hf_fail(message: str) -> NoReturn:
    print_json(msgspec.json.encode({"message": redact(message)}))
    raise SystemExit(1)


def print_json(body: bytes) -> None:
    """Host Factory's JSON, indented; a body that is not JSON becomes a message."""
    try:
        text = msgspec.json.format(body, indent=2)
    except msgspec.DecodeError:
        text = msgspec.json.encode({"message": body.decode(errors="replace")})
    sys.stdout.buffer.write(text + b"\n")
    sys.stdout.flush()
