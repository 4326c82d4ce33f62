"""Through real Ray Serve: two tenants, a predict-only key and an admin key (keys file re-read by the server).

Isolation on every analytics route, 401 and 403 on each, caches per tenant (no oracle), erasure of one
tenant's user leaving the other's same-named user intact, and the dashboard's analytics view in Chromium.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from samo_serve.client import Client, JournalEntry
from samo_serve.http.api_keys import KeyStore

from .conftest import Server, run_server
from .test_observability import dashboard_dom

WHEN = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
RANGE = {"start": (WHEN - timedelta(days=1)).isoformat(), "end": (WHEN + timedelta(days=1)).isoformat()}
ANALYTICS = [
    "/analytics/summary",
    "/analytics/emotions",
    "/analytics/timeline",
    "/analytics/users/u1/timeline",
    "/analytics/users/u1/summary",
]
TEXTS = {"a": ["acme: what a lovely day", "acme: I am so angry", "acme: thank you!"], "b": ["beta: this is sad"]}


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("tenant-keys") / "keys.json"
    store = KeyStore(path)
    keys = {
        "a": store.create("acme-app", tenant="acme"),
        "p": store.create("acme-ingest", tenant="acme", scopes=("predict",)),
        "admin": store.create("operator", tenant="ops", scopes=("admin",)),
    }
    return path, keys


@pytest.fixture(scope="module")
def tenant_server(tmp_path_factory: pytest.TempPathFactory, keys_file: tuple[Path, dict[str, str]]) -> Iterator[Server]:
    drift = {"SAMO_OBSERVABILITY__DRIFT__INTERVAL_S": "2", "SAMO_OBSERVABILITY__DRIFT__MIN_TEXTS": "100"}
    yield from run_server(tmp_path_factory, {"SAMO_API_KEYS_FILE": str(keys_file[0]), **drift})


@pytest.fixture(scope="module")
def keys(tenant_server: Server, keys_file: tuple[Path, dict[str, str]]) -> dict[str, str]:
    """Tenant beta's key is created while the server runs: replicas re-read the keys file."""
    path, keys = keys_file
    keys = {**keys, "b": KeyStore(path).create("beta-app", tenant="beta")}
    deadline = time.monotonic() + 30
    while httpx.get(f"{tenant_server.url}/emotions", headers={"X-API-Key": keys["b"]}, timeout=30).status_code == 401:
        assert time.monotonic() < deadline, "the server did not pick up a key added to its keys file"
        time.sleep(0.5)
    return keys


def client(server: Server, key: str | None) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, headers={"X-API-Key": key} if key else {})


def texts_of(server: Server, key: str, user: str, **params: str) -> int:
    with client(server, key) as c:
        r = c.get(f"/analytics/users/{user}/summary", params={**RANGE, **params})
    assert r.status_code == 200, r.text
    return int(r.json()["texts"])


@pytest.fixture(scope="module")
def written(tenant_server: Server, keys: dict[str, str]) -> dict[str, str]:
    """Each tenant's texts for its user "u1" (and "acme-only", acme's alone), in the log and its rollups."""
    for who, texts in TEXTS.items():
        with client(tenant_server, keys[who]) as c:
            body = {"texts": texts, "user_id": "u1", "occurred_at": WHEN.isoformat()}
            assert c.post("/predict/batch", json=body).status_code == 200
    with client(tenant_server, keys["p"]) as c:  # predict-only keys write for their tenant
        body = {"text": "acme: just me", "user_id": "acme-only", "occurred_at": WHEN.isoformat()}
        assert c.post("/predict", json=body).status_code == 200
    deadline = time.monotonic() + 60  # the log is written off the request path
    expected = {("a", "u1"): 3, ("b", "u1"): 1, ("a", "acme-only"): 1}  # each write lands on its own
    while {(who, user): texts_of(tenant_server, keys[who], user) for who, user in expected} != expected:
        assert time.monotonic() < deadline, "rows did not reach the request log"
        time.sleep(1)
    return keys


def get(server: Server, key: str, path: str, **params: str) -> dict[str, Any]:
    with client(server, key) as c:
        r = c.get(path, params={**RANGE, **params})
    assert r.status_code == 200, (path, r.text)
    body: dict[str, Any] = r.json()
    return body


def test_every_analytics_route_answers_from_the_callers_tenant(tenant_server: Server, written: dict[str, str]) -> None:
    for path in ANALYTICS:
        params = {"bucket": "day"} if "timeline" in path else {}
        for who, tenant in (("a", "acme"), ("b", "beta")):
            own = get(tenant_server, written[who], path, **params)
            assert own == get(tenant_server, written["admin"], path, tenant=tenant, **params), (path, who)
            assert "acme" not in str(own) if who == "b" else "beta" not in str(own)
        assert get(tenant_server, written["a"], path, **params) != get(tenant_server, written["b"], path, **params)
    assert texts_of(tenant_server, written["admin"], "u1") == 4  # admin: every tenant
    # another tenant's user reads exactly as a user nobody has
    for path in ("/analytics/users/{}/summary", "/analytics/users/{}/timeline"):
        theirs = get(tenant_server, written["b"], path.format("acme-only"))
        nobody = get(tenant_server, written["b"], path.format("nobody"))
        assert theirs | {"user_id": ""} == nobody | {"user_id": ""}, path
    assert texts_of(tenant_server, written["a"], "acme-only") == 1


def test_401_and_403_on_each_route(tenant_server: Server, written: dict[str, str]) -> None:
    routes = [("GET", p) for p in ANALYTICS] + [("DELETE", "/users/u1"), ("GET", "/stats")]
    for method, path in routes:
        for key in (None, "samo_000000000000_not-a-key"):
            with client(tenant_server, key) as c:
                assert c.request(method, path).status_code == 401, (method, path)
        with client(tenant_server, written["p"]) as c:
            r = c.request(method, path)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "FORBIDDEN"
    with client(tenant_server, written["a"]) as c:
        assert c.get("/stats").status_code == 403  # analytics keys read their tenant, not the service
        assert c.get("/analytics/summary", params={"tenant": "beta"}).status_code == 403
    with client(tenant_server, written["admin"]) as c:
        assert c.get("/stats").status_code == 200
    assert texts_of(tenant_server, written["a"], "u1") == 3  # the refused DELETEs erased nothing


def test_no_cache_oracle_across_tenants(tenant_server: Server, written: dict[str, str]) -> None:
    text = f"beta's private sentence {time.time_ns()}"
    with client(tenant_server, written["b"]) as b, client(tenant_server, written["a"]) as a:
        assert b.post("/predict", json={"text": text}).json()["cache"] == "miss"
        assert b.post("/predict", json={"text": text}).json()["cache"] == "l1"
        assert a.post("/predict", json={"text": text}).json()["cache"] == "miss"  # beta sent it: acme cannot tell
        assert a.post("/predict", json={"text": text}).json()["cache"] == "l1"


def test_dashboard_draws_one_tenants_emotion_mix(tenant_server: Server, written: dict[str, str]) -> None:
    dom = dashboard_dom(tenant_server, query=f"?key={written['admin']}&tenant=acme&range=7d")
    chart = re.search(r'<svg id="chart-mix"[^>]*data-buckets="(\d+)" data-texts="(\d+)"', dom)
    assert chart is not None, dom[-2000:]
    end = datetime.now(UTC)
    week = {"start": (end - timedelta(days=7)).isoformat(), "end": end.isoformat(), "bucket": "day"}
    with client(tenant_server, written["admin"]) as c:
        api = c.get("/analytics/timeline", params={**week, "tenant": "acme"}).json()
    assert int(chart[1]) == len(api["buckets"])
    assert int(chart[2]) == sum(b["texts"] for b in api["buckets"]) >= 4  # acme's u1 and acme-only
    bars = [int(n) for n in re.findall(r'<rect [^>]*data-count="(\d+)"', dom)]
    counts = sum(e["count"] for b in api["buckets"] for e in b["emotions"].values())
    assert sum(bars) == counts > 0  # every emotion count of the tenant is a bar segment
    user = dashboard_dom(tenant_server, query=f"?key={written['admin']}&tenant=acme&range=7d&user=acme-only")
    assert re.search(r'id="chart-mix"[^>]*data-texts="1"', user)


def test_erasing_one_tenants_user_leaves_the_other_tenants(tenant_server: Server, written: dict[str, str]) -> None:
    with client(tenant_server, written["a"]) as a:
        assert a.delete("/users/u1").json() == {"deleted": 3}
        assert a.delete("/users/u1").json() == {"deleted": 0}
        assert a.delete("/users/never-seen").json() == {"deleted": 0}
    assert texts_of(tenant_server, written["a"], "u1") == 0
    assert texts_of(tenant_server, written["b"], "u1") == 1
    assert texts_of(tenant_server, written["admin"], "u1") == 1


def _entry_rows(server: Server, user: str, column: str = "primary_emotion") -> dict[str, str]:
    """entry_id -> primary emotion (or another column) of acme's rows of ``user``, read straight from the
    server's SQLite log."""
    import sqlite3

    with sqlite3.connect(server.data_dir / "requests.sqlite3") as db:
        rows = db.execute(
            f"SELECT entry_id, {column} FROM emotion_requests WHERE tenant_id = 'acme' AND user_id = ?", (user,)
        ).fetchall()
    return dict(rows)


def _mix(server: Server, key: str, user: str) -> tuple[dict[str, int], dict[str, int]]:
    """The person's primary-emotion counts and label counts over RANGE as the client reads them (whole
    hours: the rollups)."""
    with Client(server.url, api_key=key) as samo:
        summary = samo.user_summary(user, RANGE["start"], RANGE["end"])
    labels = {label: s.count for label, s in summary.labels.items() if s.count}
    return {e: s.count for e, s in summary.emotions.items()}, labels


def _expected_mix(server: Server, user: str) -> tuple[dict[str, int], dict[str, int]]:
    """The same counted from the raw rows: primaries, and every label each row cleared."""
    cleared = [json.loads(c) for c in _entry_rows(server, user, "cleared").values()]
    return dict(Counter(_entry_rows(server, user).values())), dict(Counter(k for c in cleared for k in c))


def _wait_for(check: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the log did not reach the expected state"
        time.sleep(0.3)


def test_journal_entries_import_edit_and_delete(tenant_server: Server, written: dict[str, str]) -> None:
    """Issue 29, through the Python client and Serve: an import with entry ids, an edit, one entry deleted;
    after each, the rollups the analytics read agree with the raw rows (primaries and every label each
    entry cleared), and another tenant cannot touch the entry."""
    acme, beta = written["a"], written["b"]
    day = [WHEN + timedelta(hours=h) for h in (1, 2, 3)]
    journal = [
        ("j1", day[0], "Thank you all, I feel so grateful tonight."),
        ("j2", day[1], "I am so angry at how this went, and disappointed in myself."),
        ("j3", day[2], "Just tired and a bit sad."),
    ]
    with Client(tenant_server.url, api_key=acme) as samo:
        samo.predict_batch([JournalEntry(text, entry_id=e, occurred_at=at) for e, at, text in journal], user_id="jr1")
        _wait_for(lambda: len(_entry_rows(tenant_server, "jr1")) == 3)
        assert _mix(tenant_server, acme, "jr1") == _expected_mix(tenant_server, "jr1")
        assert sum(_mix(tenant_server, acme, "jr1")[1].values()) > 3  # an entry counted under more than one label
        # an edit of j2, later the same day
        samo.predict("Honestly, I love how it turned out.", user_id="jr1", entry_id="j2", occurred_at=day[1])
        _wait_for(lambda: _entry_rows(tenant_server, "jr1").get("j2") not in (None, "anger"))
        rows = _entry_rows(tenant_server, "jr1")
        assert sorted(rows) == ["j1", "j2", "j3"]  # the edit replaced j2's row: still one per entry
        assert _mix(tenant_server, acme, "jr1") == _expected_mix(tenant_server, "jr1")
        buckets = samo.user_timeline("jr1", WHEN, WHEN + timedelta(days=1), bucket="day")  # WHEN's day and the next
        assert sum(b.texts for b in buckets) == 3
        carried = sum((Counter({label: s.count for label, s in b.labels.items()}) for b in buckets), Counter())
        assert dict(carried) == _expected_mix(tenant_server, "jr1")[1]  # Counter addition drops the zeros

    with Client(tenant_server.url, api_key=beta) as other:  # another tenant's key: the entry is not there for it
        assert other.delete_entry("jr1", "j1") == 0
    with Client(tenant_server.url, api_key=acme) as samo:
        assert samo.delete_entry("jr1", "j1") == 1
        assert samo.delete_entry("jr1", "j1") == 0
    rows = _entry_rows(tenant_server, "jr1")
    assert sorted(rows) == ["j2", "j3"]
    assert _mix(tenant_server, acme, "jr1") == _expected_mix(tenant_server, "jr1")


def test_dashboard_for_a_tenant_key_and_a_person(
    tenant_server: Server, written: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 29: a tenant's key sees its analytics view, not ops panels emptied under a 403; a person's
    view has a valence line and its top emotions' mean scores; an emotion keeps its colour across views."""
    shots = tmp_path_factory.mktemp("dashboard")
    tenant = dashboard_dom(tenant_server, shots / "tenant.png", query=f"?key={written['a']}&range=7d")
    assert re.search(r'<body[^>]*data-view="analytics"', tenant), tenant[:500]
    assert re.search(r'<span id="status" class="muted">analytics view', tenant), tenant[:800]
    assert re.search(r'id="chart-mix"[^>]*data-texts="[1-9]', tenant)
    with client(tenant_server, written["a"]) as c:  # a person of its own (other tests erase u1)
        body = {"text": "What a lovely, happy day with my family.", "user_id": "dash1", "occurred_at": WHEN.isoformat()}
        assert c.post("/predict", json=body).status_code == 200
    _wait_for(lambda: texts_of(tenant_server, written["a"], "dash1") == 1)
    person = dashboard_dom(tenant_server, shots / "person.png", query=f"?key={written['a']}&range=30d&user=dash1")
    valence = re.search(r'data-name="valence" data-values="([^"]*)"', person)
    assert valence is not None, person[-2000:]
    assert any(v for v in valence[1].split(","))  # dash1 wrote on one day of the range: a point there
    # the mean scores of the emotions dash1's text carried (labels it cleared), a point on that day each
    scores = {n: v for n, v in re.findall(r'data-name="(\w+)" data-values="([^"]*)"', person) if n != "valence"}
    assert scores, person[-2000:]
    assert "neutral" not in scores, scores
    assert all(0 < float(x) <= 1 for v in scores.values() for x in v.split(",") if x), scores
    assert all(any(v.split(",")) for v in scores.values()), scores
    colours: dict[str, set[str]] = {}  # every bar of both views: one colour per emotion
    for dom in (tenant, person):
        for colour, label in re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})" data-label="(\w+)"', dom):
            colours.setdefault(label, set()).add(colour)
    assert colours, person[-2000:]
    assert all(len(c) == 1 for c in colours.values()), colours
    admin = dashboard_dom(tenant_server, query=f"?key={written['admin']}&tenant=acme")
    assert not re.search(r"<body[^>]*data-view=", admin)  # admins see both views
    print(f"\ndashboard screenshots: {shots}")


def test_a_shifted_tenant_drifts_and_the_other_does_not(
    tenant_server: Server,
    written: dict[str, str],
    goemotions_dir: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Issue 28 through Serve: acme sends only GoEmotions train texts labelled anger or grief, beta ordinary
    dev texts; the drift gauge of acme passes its threshold, beta's stays under it; `samo-serve drift
    report` and GET /analytics/drift say the same, each tenant's key sees its own tenant only."""
    from samo_serve.core.model_card import load_card
    from samo_serve.modeling.goemotions import read_split
    from samo_serve.ops.cli import main
    from samo_serve.settings import DriftSettings, default_model_dir

    card = load_card(default_model_dir(), verify=False)
    train = read_split(goemotions_dir, "train", len(card.labels))
    wanted = [card.labels.index("anger"), card.labels.index("grief")]
    streams = {
        "a": [t for t, y in zip(train.texts, train.targets, strict=True) if y[wanted].any()][:256],
        "b": read_split(goemotions_dir, "dev", len(card.labels)).texts[:256],
    }
    for who, texts in streams.items():
        with client(tenant_server, written[who]) as c:
            for i in range(0, len(texts), 32):
                assert c.post("/predict/batch", json={"texts": texts[i : i + 32]}).status_code == 200
    threshold = DriftSettings().mix_js_threshold

    def gauges() -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{tenant_server.metrics_port}/metrics", timeout=30).text
        found = re.findall(r"^ray_samo_drift_mix_js\{([^}]*)\} ([0-9.e+-]+)$", text, re.M)
        out: dict[str, float] = {}
        for labels, value in found:
            tenant = re.search(r'tenant="([^"]*)"', labels)
            if tenant and f'model_version="{card.version}"' in labels:
                out[tenant[1]] = max(out.get(tenant[1], 0.0), float(value))
        return out

    _wait_for(lambda: {"acme", "beta"} <= set(gauges()) and gauges()["acme"] > threshold, timeout_s=90)
    assert gauges()["beta"] < threshold
    with client(tenant_server, written["b"]) as c:  # beta's key: beta alone
        mine = c.get("/analytics/drift").json()
    assert set(mine["tenants"]) == {"beta"}
    assert mine["tenants"]["beta"][card.version]["drifted"] is False
    assert main(["drift", "report", "--url", tenant_server.url, "--api-key", written["admin"], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tenants"]["acme"][card.version]["drifted"] is True
    assert "anger" in {m["label"] for m in report["tenants"]["acme"][card.version]["moved"][:3]}
    dom = dashboard_dom(tenant_server, query=f"?key={written['admin']}")  # the drift panel: bars per tenant
    bars = dict(re.findall(r'<rect [^>]*data-tenant="(acme|beta)" [^>]*data-name="mix_js" data-value="([^"]+)"', dom))
    assert float(bars["acme"]) > threshold > float(bars["beta"]), bars
    shot = tmp_path_factory.mktemp("dashboard-drift") / "drift.png"  # acme's own view: the panel in sight
    dom = dashboard_dom(tenant_server, shot, query=f"?key={written['a']}")
    assert re.findall(r'<rect [^>]*data-tenant="(\w+)" [^>]*data-name="mix_js"', dom) == ["acme"]
    print(f"\ndrift panel screenshot: {shot}")
    # acme's stream is its new normal: pinned with its own key, its drift is measured from there
    capsys.readouterr()
    assert main(["drift", "pin", "--url", tenant_server.url, "--api-key", written["a"]]) == 0
    assert json.loads(capsys.readouterr().out)["tenant"] == "acme"
    with client(tenant_server, written["a"]) as c:
        after = c.get("/analytics/drift").json()["tenants"]["acme"][card.version]
    assert (after["drifted"], after["reference"][:7]) == (False, "pinned ")
    assert main(["drift", "pin", "--url", tenant_server.url, "--api-key", written["a"], "--unpin"]) == 0
