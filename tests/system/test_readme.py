"""The README's embedding example is real code: this runs it, twice, on a real SQLite file."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


async def test_the_readme_example_runs_and_replays_its_events(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(example_source(), "README.md", "exec"), namespace)
    main = namespace["main"]
    url = f"sqlite://{tmp_path}/example.db"

    first = await main(url)  # type: ignore[operator]
    second = await main(url)  # type: ignore[operator]

    assert (first, second) == (42, 72)  # the second run's "pay-42" was applied already
    assert capsys.readouterr().out.splitlines() == [
        "version 1, balance 42",
        "version 3, balance 72",
    ]
