"""Every card, alert and digest line is byte-identical to what main's code produced before
the read model (tests/golden/month_outputs.py recorded them), on the demo org and on a
randomized org, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest

from tests.golden.month_outputs import GOLDEN, SCENARIOS, digest_of, record_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_month_surface_is_byte_identical_to_mains(db_url: str, scenario: str) -> None:
    golden = {k: v for k, v in json.loads(GOLDEN.read_text()).items()
              if k.startswith(f"{scenario}@")}
    got = await record_scenario(db_url, scenario)
    assert len(golden) > 100
    assert sorted(got) == sorted(golden)  # the same outputs exist …
    differ = [k for k in golden if digest_of(got[k]) != golden[k]]
    # … with the same bytes (on a failure, `python -m tests.golden.month_outputs --dump DIR`
    # on both commits shows the texts).
    assert not differ, (len(differ), differ[:10], [got[k][:600] for k in differ[:2]])
