"""Default windows never empty a view because of one new report (issue 16 item 7).

A store holding old history (the 200 real reports of July–August 2023) receives one
report today: the dispatch map and Open311 GET without dates must still show the history,
on both backends."""

from __future__ import annotations

import json
import re

from open311_support import API, CARTONS, VALMY, Served

_DATA_BLOCK = re.compile(r'<script type="application/json" id="voirie-data">(.*?)</script>', re.S)


def _dispatch_count(served: Served) -> int:
    page = served.client.get("/maps/dispatch").text
    found = _DATA_BLOCK.search(page)
    assert found is not None
    return len(json.loads(found.group(1))["incidents"]["id"])


def _open311_count(served: Served) -> int:
    answer = served.client.get(f"{API}/requests.json", params={"page_size": 1000})
    assert answer.status_code == 200, answer.text
    return len(answer.json())


def test_one_new_report_does_not_empty_the_default_views(served: Served) -> None:
    before_map, before_open311 = _dispatch_count(served), _open311_count(served)
    assert before_map > 50
    assert before_open311 > 50
    posted = served.client.post(
        f"{API}/requests.json",
        json={"api_key": served.client_key, "service_code": CARTONS, **VALMY},
    )
    assert posted.status_code == 201, posted.text
    # The new report is shown, and the history stays (one day of it at most drops out).
    assert _dispatch_count(served) >= before_map - 10
    assert _open311_count(served) >= before_open311
