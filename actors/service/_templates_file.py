"""Reading a Host Factory templates file from disk: strictly, or serving what can be served.

Kept apart from the configuration (`_config`) because reading templates
needs the domain's template rules, and the configuration must stay light:
every Host Factory script call reads it, and most never read a template.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import msgspec

from hostsmith.actors.errors import TemplateError
from hostsmith.actors.hostfactory import Template, TemplatesRead, parse_templates, read_templates


def load_templates(path: pathlib.Path) -> dict[str, Template]:
    """Read and check a Host Factory templates file strictly: any bad template is an error."""
    return parse_templates(_read(path), str(path))


def read_templates_file(
    path: pathlib.Path, check: Callable[[Template], None] | None = None
) -> TemplatesRead:
    """The usable templates of a file, and each one left out or key ignored, by name.

    A template's `userDataScript` is read here, relative to the templates file,
    and becomes its user data.
    """
    read = read_templates(_read(path), str(path), check)
    left_out = list(read.left_out)
    templates: dict[str, Template] = {}
    for template_id, template in read.templates.items():
        script = template.user_data_script
        if script is None:
            templates[template_id] = template
            continue
        where = f"{path}: template {template_id!r}"
        if template.user_data is not None:
            left_out.append(f"{where}: give userData or userDataScript, not both")
            continue
        try:
            text = (path.parent / pathlib.Path(script).expanduser()).read_text()
        except OSError as error:
            left_out.append(f"{where}: cannot read userDataScript {script}: {error.strerror}")
            continue
        templates[template_id] = msgspec.structs.replace(template, user_data=text)
    return TemplatesRead(templates, left_out, read.ignored_keys)


def _read(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TemplateError(f"cannot read templates file {path}: {error.strerror}") from None
