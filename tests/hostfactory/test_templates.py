"""Host Factory templates: the file's rules, and maxNumber under a race."""

from __future__ import annotations

import json

import pytest
import trio

from hostsmith.actors.errors import TemplateError
from hostsmith.actors.hostfactory import (
    CAPACITY,
    UNLIMITED,
    Release,
    Reserve,
    parse_templates,
)
from hostsmith.actors.service import load_templates
from hostsmith.runtime import Rejected, open_runtime
from hostsmith.runtime.testing import MemoryStore

ATTRIBUTES = {"type": ["String", "X86_64"], "ncpus": ["Numeric", "1"], "nram": ["Numeric", "1024"]}


def templates_file(*templates: dict[str, object]) -> bytes:
    return json.dumps({"templates": list(templates)}).encode()


def template(**fields: object) -> dict[str, object]:
    return {"templateId": "OnDemand-Minimal", "maxNumber": 10, "attributes": ATTRIBUTES, **fields}


def test_a_symphony_templates_file_is_read_with_its_camel_case_keys() -> None:
    parsed = parse_templates(
        templates_file(
            template(vmType="t3.micro", imageId="ami-1", instanceTags="a=1;b=2"),
            template(
                templateId="Spot",
                maxNumber=-1,
                priceType="spot",
                fleetRole="arn:role",
                vmTypes={"m5.large": 1},
                providerApi="SpotFleet",
                futureKey="ignored",
            ),
        )
    )
    assert sorted(parsed) == ["OnDemand-Minimal", "Spot"]
    assert parsed["OnDemand-Minimal"].vm_type == "t3.micro"
    assert parsed["OnDemand-Minimal"].limit == 10
    assert parsed["Spot"].limit == UNLIMITED
    assert parsed["Spot"].vm_types == {"m5.large": 1}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"maxNumber": 10001}, r"Expected `int` <= 10000 - at `\$.templates\[0\].maxNumber`"),
        (
            {"templateId": "has space"},
            r"Expected `str` matching regex .* - at `\$.templates\[0\].templateId`",
        ),
        (
            {"priceType": "cheap"},
            r"Expected `str` matching one of .* - at `\$.templates\[0\].priceType`|Invalid enum value 'cheap' - at `\$.templates\[0\].priceType`",
        ),
        (
            {"attributes": {"type": ["String", "X86_64"]}},
            r"\(OnDemand-Minimal\): attributes must include ncpus, nram$",
        ),
    ],
)
def test_a_bad_template_is_named_with_its_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(TemplateError, match=rf"^templates.json: .*{message}"):
        parse_templates(templates_file(template(**fields)), "templates.json")


def test_a_missing_template_id_is_named() -> None:
    with pytest.raises(
        TemplateError, match=r"Object missing required field `templateId` - at `\$.templates\[0\]`"
    ):
        parse_templates(templates_file({"maxNumber": 1, "attributes": ATTRIBUTES}))


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(TemplateError, match=r"templateId 'OnDemand-Minimal' appears twice$"):
        parse_templates(templates_file(template(), template()))


def test_malformed_json_and_missing_files_are_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.json"
    broken.write_text('{"templates": [')
    with pytest.raises(TemplateError, match=rf"^{broken}: Input data was truncated$"):
        load_templates(broken)
    with pytest.raises(
        TemplateError,
        match=rf"^cannot read templates file {tmp_path}/absent.json: No such file or directory$",
    ):
        load_templates(tmp_path / "absent.json")


async def test_max_number_holds_under_200_racing_reservations() -> None:
    async with open_runtime(MemoryStore(), kinds=[CAPACITY]) as runtime:
        granted: list[str] = []
        refused: list[str] = []

        async def request(n: int) -> None:
            try:
                await runtime.get(CAPACITY, "OnDemand").execute(Reserve(f"req-{n}", 3, limit=100))
                granted.append(f"req-{n}")
            except Rejected as rejection:
                refused.append(str(rejection))

        async with trio.open_nursery() as nursery:
            for n in range(200):
                nursery.start_soon(request, n)

        state = await runtime.get(CAPACITY, "OnDemand").state()
        assert len(granted) == 33  # 33 * 3 = 99; a 34th would need 102
        assert state.in_use == 99
        assert len(refused) == 167
        assert set(refused) == {
            "template OnDemand has 1 of 100 machines available; cannot provision 3"
        }


async def test_released_capacity_can_be_reserved_again_and_retries_are_harmless() -> None:
    async with open_runtime(MemoryStore(), kinds=[CAPACITY]) as runtime:
        ledger = runtime.get(CAPACITY, "T")
        await ledger.execute(Reserve("req-1", 5, limit=5))
        assert (await ledger.execute(Reserve("req-1", 5, limit=5))).events == ()  # a retry
        with pytest.raises(
            Rejected, match=r"^template T has 0 of 5 machines available; cannot provision 1$"
        ):
            await ledger.execute(Reserve("req-2", 1, limit=5))

        await ledger.execute(Release("req-1", 2))
        await ledger.execute(Reserve("req-2", 2, limit=5))
        await ledger.execute(Release("req-1", 99))  # only what it holds is released

        state = await ledger.state()
        assert state.in_use == 2
        assert state.reserved == {"req-2": 2}


async def test_a_count_below_one_is_refused() -> None:
    async with open_runtime(MemoryStore(), kinds=[CAPACITY]) as runtime:
        with pytest.raises(Rejected, match=r"^machineCount must be at least 1, not -2$"):
            await runtime.get(CAPACITY, "T").execute(Reserve("req-1", -2, limit=5))


def test_a_spot_template_needs_no_fleet_role_in_the_domain() -> None:
    """fleetRole is AWS's business: the aws provider defaults it (issue 12)."""
    parsed = parse_templates(templates_file(template(priceType="spot")))
    assert parsed["OnDemand-Minimal"].fleet_role is None
