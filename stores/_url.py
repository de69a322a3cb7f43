"""Store URL options: `?key=value` pairs, each checked against the ones a backend knows.

Every backend takes its options from the query of its URL
(`sqlite:///x.db?synchronous=normal`, `dynamodb://t?region=eu-west-1`). A
misspelt option that is silently ignored is a setting the user believes in
but does not have, so an unknown one is refused by name, with the known ones.
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs

from hostsmith.runtime import StoreOpenError


def url_options(url: SplitResult, store: str, known: tuple[str, ...]) -> dict[str, str]:
    """The URL's options (the last value of each), or an error naming an unknown one."""
    options = {key: values[-1] for key, values in parse_qs(url.query).items()}
    unknown = set(options) - set(known)
    if unknown:
        raise StoreOpenError(
            f"unknown option {sorted(unknown)[0]!r} in {store} store URL {url.geturl()!r} "
            f"(known: {', '.join(known)})"
        )
    return options
