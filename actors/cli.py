"""The `hostsmith` entry point: Host Factory's calls on a lean path, everything else through typer.

Host Factory runs `hostsmith hf COMMAND` as a new process for every call,
so that path is served before the command-line framework, the server and
the proof tooling are imported (`hostsmith.actors.commands.hf_script`);
`hostsmith hf --help` and every other command go to the full command line
(`hostsmith.actors.commands.run`), whose table of contents is
`hostsmith.actors.commands._table`. Errors the user can fix are one line
naming the problem, with exit status 2; never a traceback.
"""

from __future__ import annotations

import sys


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["hf"] and not {"--help", "-h"} & set(arguments):
        from hostsmith.actors.commands import hf_script

        raise SystemExit(hf_script(arguments[1:]))
    from hostsmith.actors.commands import run

    run()


if __name__ == "__main__":
    main()
