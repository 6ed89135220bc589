"""Issue 22, H1: bodies whose signature is not verified cannot starve verified clients.

Hostile clients that know key ids (they appear in leads, log exports, usage reports) send only
headers with a junk signature and a large Content-Length, renewed as soon as one is answered;
another key's calls must still be answered. Bounded: 60 hostile connections, waits on conditions."""

from __future__ import annotations

import selectors
import socket
import threading
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from faceaudit.service import BodyBudget
from tests.service.conftest import client, create_key
from tests.service.test_hostile import signed_head

MIB = 1024 * 1024


class Attack:
    """``n`` connections from ``addresses`` holding header-only requests (junk signature, the
    given key ids, Content-Length ``length``); each answered or closed one is opened again."""

    def __init__(self, url: str, keys, n: int, length: int, addresses, op: str = "CompareFaces") -> None:
        self.url, self.n, self.length = url, n, length
        self.heads = [signed_head(url, {"AccessKeyId": k["AccessKeyId"], "SecretAccessKey": "junk" * 10},
                                  length, op) for k in keys]
        self.addresses = list(addresses)
        self.stop = threading.Event()
        self.opened = 0
        self.answered = 0
        self.held = threading.Event()  # all n connections sent their headers once
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, sel, i: int) -> None:
        parts = urlsplit(self.url)
        try:
            s = socket.create_connection((parts.hostname, parts.port), timeout=10,
                                         source_address=(self.addresses[i % len(self.addresses)], 0))
            s.sendall(self.heads[i % len(self.heads)] + b"{")  # one byte of the body, then nothing
        except OSError:
            return
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        self.opened += 1

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        for i in range(self.n):
            self._open(sel, i)
        self.held.set()
        while not self.stop.is_set():
            for sk, _ in sel.select(0.2):
                s = sk.fileobj
                sel.unregister(s)
                s.close()  # answered (503) or closed: renewed at once
                self.answered += 1
                self._open(sel, sk.data + 1)
        for sk in list(sel.get_map().values()):
            sk.fileobj.close()

    def __enter__(self) -> Attack:
        self.thread.start()
        assert self.held.wait(60)
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)


@pytest.fixture()
def default_limits_server(tmp_path):
    """A server with the default limits (160 MiB of unverified bodies per worker)."""
    from faceaudit.service import (
        ServiceApp,
        ServiceConfig,
        start_in_thread,
        stop_thread_server,
    )

    keys = [create_key(tmp_path), create_key(tmp_path, "admin"), create_key(tmp_path), create_key(tmp_path)]
    app = ServiceApp(ServiceConfig(tmp_path, rate_limit=10_000))
    srv, thread, url = start_in_thread(app)
    yield url, keys
    stop_thread_server(srv, thread)


def victim_calls(url, key, n: int):
    """``n`` DetectFaces calls (alternately a 200 KB and a 100-byte junk image): how many got an
    answer from the service (InvalidImageFormatException), not a refusal or a broken connection."""
    rek = client(url, key, connect_timeout=10, read_timeout=30)
    answered = 0
    for i in range(n):
        try:
            rek.detect_faces(Image={"Bytes": b"x" * (200_000 if i % 2 == 0 else 100)})
        except ClientError as exc:
            answered += exc.response["Error"]["Code"] == "InvalidImageFormatException"
        except Exception:
            pass
    return answered


def test_header_only_requests_with_known_key_ids_do_not_starve_another_key(default_limits_server):
    url, keys = default_limits_server
    victim = keys[0]
    length = 160 * MIB // 12  # 12 such (CompareFaces) bodies fill the worker's budget to the byte
    addresses = [f"127.0.0.{i}" for i in range(2, 8)]
    # the attacker names the victim's own key id as well as three other known ones
    with Attack(url, keys, 60, length, addresses) as attack:
        answered = victim_calls(url, victim, 100)
        assert attack.opened >= 60
    assert answered >= 99, f"{answered} of 100 answered"


def test_budget_is_fair_between_addresses_and_evicts_the_greediest():
    evicted = []
    budget = BodyBudget(total=100, per_key=100, per_address=50, small_body=5, small_reserve=20)
    held = []
    for i in range(4):  # the attacker fills the total from two addresses
        r = budget.reserve("victim", 25, f"10.0.0.{i % 2 + 1}")
        assert r
        r.evict = lambda r=r: evicted.append(r)
        held.append(r)
    assert budget.used == 100
    assert budget.reserve("victim", 25, "10.0.0.1") is None  # the address's share is taken
    mine = budget.reserve("victim", 30, "192.0.2.9")  # a newcomer under its fair share (33)
    assert mine and len(evicted) == 2 and {r.address for r in evicted} == {"10.0.0.1", "10.0.0.2"}
    assert budget.used == 80


def test_small_bodies_fit_within_the_reserve_when_large_ones_fill_the_budget():
    budget = BodyBudget(total=100, per_key=100, per_address=100, small_body=5, small_reserve=20)
    assert budget.reserve("k", 100, "10.0.0.1")  # nothing evictable (no evict callback)
    assert budget.reserve("other", 6, "192.0.2.1") is None
    assert budget.reserve("other", 5, "192.0.2.1")  # small: within the reserve
    assert budget.reserve("other", 5, "192.0.2.2")
    assert budget.reserve("more", 5, "192.0.2.1") is None  # a quarter of the reserve each


def test_failures_make_the_address_and_the_key_from_it_back_off():
    now = [0.0]
    budget = BodyBudget(total=100, per_key=64, per_address=100, small_body=1, clock=lambda: now[0])
    budget.failed("k", "10.0.0.1")
    assert budget.penalty("k", "10.0.0.1") == 1.0 and budget.reserve("k", 10, "10.0.0.1") is None
    assert budget.reserve("x", 10, "10.0.0.1") is None  # the address pays, whatever key it names
    assert budget.reserve("k", 10, "10.0.0.2")  # the key from elsewhere does not (key ids are public)
    now[0] += 1.0
    budget.failed("k", "10.0.0.1")
    assert budget.penalty("k", "10.0.0.1") == 2.0  # doubling
    for _ in range(10):
        now[0] += 100
        budget.failed("k", "10.0.0.1")
    assert budget.penalty("k", "10.0.0.1") == 60.0  # at most a minute
    budget.verified("k", "10.0.0.1")
    assert budget.penalty("k", "10.0.0.1") == 0.0


def test_a_key_whose_strangers_fail_shrinks_their_share_not_its_holders():
    budget = BodyBudget(total=1000, per_key=64, per_address=1000, small_body=1)
    budget.verified("k", "10.0.0.1")  # the holder's address
    for i in range(3):
        budget.failed("k", f"10.0.1.{i}")  # strangers fail: their share of k is 64 >> 3 = 8
    assert budget.reserve("k", 20, "10.0.2.1")  # a stranger's first body fits
    assert budget.reserve("x", 1, "10.0.2.2") and budget.reserve("k", 20, "10.0.2.2") is None
    assert budget.reserve("k", 60, "10.0.0.1") and budget.reserve("k", 4, "10.0.0.1")  # the holder's own share


def test_large_unverified_bodies_are_spooled_not_held(tmp_path):
    from faceaudit.service._protocol import BodyReader

    reader = BodyReader(3 * MIB, spool_above=MIB, spool_dir=str(tmp_path))
    for _ in range(3):
        reader.add(b"a" * MIB)
    body, _digest = reader.result()
    assert not isinstance(body, bytes) and body.read(3) == b"aaa"
    assert len(reader._parts) == 0  # nothing of it in memory
    body.close()
