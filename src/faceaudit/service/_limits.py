"""Limits enforced before any work: request body size, per-key request rate, and the budget of
request bodies whose signature is not yet verified.

The rate limiter is a token bucket per access key kept in shared memory that the
worker processes of one ``faceaudit serve`` inherit (forked or spawned), so they
share the buckets: the limit holds for the service, not per worker.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import struct
import time
from collections.abc import Callable
from typing import Any

from faceaudit.engine import MAX_IMAGE_BYTES

log = logging.getLogger(__name__)

BODY_OVERHEAD_BYTES = 1024 * 1024
"""What a request may hold besides its images (JSON, ids, lists of FaceIds): 1 MiB."""

BASE64_IMAGE_BYTES = 4 * math.ceil(MAX_IMAGE_BYTES / 3)
"""A 5 MB image as base64 text."""


def body_limit(n_images: int) -> int:
    """Largest body accepted for an operation taking ``n_images`` images.

    1 MiB plus one base64-encoded 5 MB image per image member: about 7.7 MiB for
    IndexFaces, 14.3 MiB for CompareFaces, 1 MiB for operations without images.
    """
    return BODY_OVERHEAD_BYTES + n_images * BASE64_IMAGE_BYTES


class RateLimiter:
    """Token buckets keyed by access key id, shared by the processes forked after creation.

    ``rate`` tokens per second refill each bucket up to ``burst`` (default: one
    second's worth, at least 1). Each request takes one token. ``rate <= 0``
    disables the limit.
    """

    _SLOT = struct.Struct("<32sdd")  # key digest, tokens, last refill (monotonic seconds)

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        slots: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst else max(1.0, self.rate)
        self.slots = slots
        self.clock = clock
        # shared memory and a lock that worker processes inherit, forked or spawned (pickled
        # with the worker's arguments: see __getstate__)
        context = multiprocessing.get_context("spawn")
        self._raw = context.RawArray("B", slots * self._SLOT.size)
        self._lock = context.Lock()
        self._mem = memoryview(self._raw).cast("B")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_mem"]  # a view of _raw: made again in the worker
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mem = memoryview(self._raw).cast("B")

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        start = int.from_bytes(digest[:4], "little") % self.slots
        size = self._SLOT.size
        now = self.clock()
        with self._lock:
            for probe in range(self.slots):
                offset = ((start + probe) % self.slots) * size
                stored, tokens, last = self._SLOT.unpack_from(self._mem, offset)
                if stored == digest:
                    tokens = min(self.burst, tokens + (now - last) * self.rate)
                    break
                if stored == b"\0" * 32:
                    tokens = self.burst
                    break
            else:  # every slot taken (e.g. --no-auth with very many clients): start over
                self._mem[:] = bytes(len(self._mem))
                offset = start * size
                tokens = self.burst
            if tokens >= 1.0:
                self._SLOT.pack_into(self._mem, offset, digest, tokens - 1.0, now)
                return 0.0
            self._SLOT.pack_into(self._mem, offset, digest, tokens, now)
            return (1.0 - float(tokens)) / self.rate


# -- bodies whose signature is not yet verified ------------------------------------------------

SMALL_BODY_BYTES = 64 * 1024
"""A body at most this large is small: admitted within :attr:`BodyBudget.small_reserve` even
when large unverified bodies fill the worker's budget."""

MAX_BACKOFF_SECONDS = 60.0
"""The longest a client address (or a key id from it) is refused after its failures."""

_TRUSTED_PAIRS = 4096
"""(key id, address) pairs that verified a signature, remembered per worker (oldest forgotten)."""


def address_group(address: str) -> str:
    """The unit of fairness of a client address: the address itself (IPv4), its /64 (IPv6: one
    subscriber usually holds a whole /64)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        mapped = ip.ipv4_mapped
        return str(mapped) if mapped is not None else str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Reservation:
    """Bytes of one unverified body held in a :class:`BodyBudget`. ``evict`` (set by the server)
    cancels its reading when a fairer claim needs the room; ``reading`` is False once the body is
    complete (it is then verified and can no longer be evicted)."""

    __slots__ = ("address", "evict", "evicted", "key", "n", "reading", "released", "small", "stranger")

    def __init__(self, key: str, address: str, n: int, small: bool) -> None:
        self.key, self.address, self.n, self.small = key, address, n, small
        self.stranger = False  # from an address that had not verified a signature of the key
        self.reading = True
        self.evicted = False
        self.evict: Callable[..., object] | None = None
        self.released = False

    def __bool__(self) -> bool:
        return True


class BodyBudget:
    """Bytes of request bodies held before their signature is verified, per worker: in total,
    per access key id and per client address, with fair shares (used on the event loop only:
    no lock).

    - Per key id and address (``per_key``) and per address (``per_address``, None: no
      per-address share) a holder may always have one body in flight if the total has room.
      Key ids are public (leads, log exports): a stranger naming a key cannot use up the share
      of its holder. Addresses that never verified a signature of a key (strangers) share one
      ``per_key`` of it, beyond the first body of an address.
    - When the total is full, a claim from an address holding less than its fair share
      (total / active addresses) evicts reservations, still being read, of the address holding
      the most beyond its share (their requests get 503).
    - Small bodies (at most ``small_body`` bytes) fit within ``small_reserve`` more bytes when
      the total is full, each address at most a quarter of it.
    - Back-off: each failure (a wrong signature, a body that did not arrive) of an address or of
      a key id from that address refuses its next unverified bodies larger than ``small_body``
      for 1 s, doubling with each further failure up to :data:`MAX_BACKOFF_SECONDS`
      (:meth:`penalty`); a verified signature clears it. (Small bodies are cheap to hold: a
      client that got its signing wrong still reads the reason.) A key id's failures from
      strangers also halve its share for strangers.
    """

    def __init__(self, total: int, per_key: int, per_address: int | None = None,
                 small_body: int = SMALL_BODY_BYTES, small_reserve: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.per_key = per_key
        self.per_address = per_address
        self.small_body = small_body
        self.small_reserve = small_reserve
        self.clock = clock
        self.used = 0
        self.small_used = 0
        self._by_key: dict[str, int] = {}  # bytes held per "key@address" and per "key?" (strangers)
        self._by_address: dict[str, int] = {}
        self._small_by_address: dict[str, int] = {}
        self._live: list[Reservation] = []  # reservations, oldest first
        self._trusted: dict[tuple[str, str], None] = {}  # (key, address) pairs that verified (LRU order)
        self._failures: dict[str, tuple[int, float]] = {}  # holder -> (count, refused until)
        self._key_failures: dict[str, tuple[int, float]] = {}  # key -> (failures from strangers, last)

    # -- admission -------------------------------------------------------------------------------

    def penalty(self, key: str, address: str = "-") -> float:
        """Seconds ``key`` from ``address`` is still refused (0.0: not refused)."""
        address = address_group(address)
        now = self.clock()
        wait = 0.0
        for holder in (f"addr:{address}", f"{key}@{address}"):
            entry = self._failures.get(holder)
            if entry is not None:
                wait = max(wait, entry[1] - now)
        return max(0.0, wait)

    def reserve(self, key: str, n: int, address: str = "-") -> Reservation | None:
        """Take ``n`` bytes for ``key`` from ``address``; None when they do not fit (or the
        holder is backing off: :meth:`penalty`)."""
        address = address_group(address)
        if n > self.small_body and self.penalty(key, address) > 0:
            return None
        pair = f"{key}@{address}"
        trusted = (key, address) in self._trusted
        held_pair = self._by_key.get(pair, 0)
        held_addr = self._by_address.get(address, 0)
        if n and held_pair and held_pair + n > self.per_key:
            return None
        if n and self.per_address is not None and held_addr and held_addr + n > self.per_address:
            return None
        if n and not trusted and held_addr:  # strangers naming the key share one share of it
            failures, last = self._key_failures.get(key, (0, 0.0))
            share = self.per_key
            if failures and self.clock() - last < MAX_BACKOFF_SECONDS:
                share = max(self.small_body, self.per_key >> min(16, failures))
            if self._by_key.get(f"{key}?", 0) + n > share:
                return None
        small = 0 < n <= self.small_body
        reservation = Reservation(key, address, n, False)
        if n and self.used and self.used + n > self.total and not self._evict_for(address, n):
            if not small or not self._small_fits(address, n):
                return None
            reservation.small = True
            self.small_used += n
            self._small_by_address[address] = self._small_by_address.get(address, 0) + n
        else:
            self.used += n
            self._by_address[address] = held_addr + n
        self._by_key[pair] = held_pair + n
        if not trusted:
            self._by_key[f"{key}?"] = self._by_key.get(f"{key}?", 0) + n
            reservation.stranger = True
        self._live.append(reservation)
        return reservation

    def _small_fits(self, address: str, n: int) -> bool:
        if self.small_used + n > self.small_reserve:
            return False
        return self._small_by_address.get(address, 0) + n <= max(self.small_body, self.small_reserve // 4)

    def _evict_for(self, address: str, n: int) -> bool:
        """Evict reservations of the addresses most beyond their fair share until ``n`` bytes fit
        for ``address`` (which must hold less than its share). False when that cannot be done."""
        active = set(self._by_address) | {address}
        fair = self.total / len(active)
        if self._by_address.get(address, 0) + n > fair:
            return False
        victims = []
        freed = 0
        held = dict(self._by_address)
        while self.used - freed + n > self.total:
            richest = max((a for a in held if a != address), key=lambda a: held[a], default=None)
            if richest is None or held[richest] <= fair:
                return False
            candidates = [r for r in self._live if r.address == richest and r.reading and not r.small
                          and r.evict is not None and r not in victims]
            if not candidates:
                held[richest] = 0  # nothing of it can be evicted: look at the next
                continue
            victim = candidates[-1]  # the newest
            victims.append(victim)
            freed += victim.n
            held[richest] -= victim.n
        for victim in victims:
            log.warning("unverified body of %s from %s evicted for a fairer claim", victim.key, victim.address)
            victim.evicted = True
            self.release(victim)
            victim.evict()  # type: ignore[misc]  # every victim was chosen with an evict callback
        return True

    def release(self, reservation: Reservation | str, n: int | None = None, address: str = "-") -> None:
        """Give back a reservation (or, by key and size, the oldest one of ``key`` from ``address``)."""
        if isinstance(reservation, Reservation):
            r = reservation
        else:
            key, group = reservation, address_group(address)
            found = next((x for x in self._live if x.key == key and x.n == n and x.address == group), None)
            if found is None:
                return
            r = found
        if r.released:
            return
        r.released = True
        self._live.remove(r)
        _decrease(self._by_key, f"{r.key}@{r.address}", r.n)
        if r.stranger:
            _decrease(self._by_key, f"{r.key}?", r.n)
        if r.small:
            self.small_used -= r.n
            _decrease(self._small_by_address, r.address, r.n)
        else:
            self.used -= r.n
            _decrease(self._by_address, r.address, r.n)

    # -- outcomes --------------------------------------------------------------------------------

    def failed(self, key: str, address: str = "-") -> None:
        """A wrong signature or a body that did not arrive: the address, and the key id from it,
        back off (1 s, doubling per failure, at most :data:`MAX_BACKOFF_SECONDS`)."""
        address = address_group(address)
        now = self.clock()
        for holder in (f"addr:{address}", f"{key}@{address}"):
            count = self._failures.get(holder, (0, 0.0))[0] + 1
            self._failures[holder] = (count, now + min(MAX_BACKOFF_SECONDS, 2.0 ** (count - 1)))
        if (key, address) not in self._trusted:
            count, last = self._key_failures.get(key, (0, 0.0))
            self._key_failures[key] = ((count if now - last < MAX_BACKOFF_SECONDS else 0) + 1, now)
        if len(self._failures) > 8 * _TRUSTED_PAIRS:  # forget the expired
            self._failures = {h: e for h, e in self._failures.items() if e[1] > now}
            self._key_failures = {k: e for k, e in self._key_failures.items() if now - e[1] < MAX_BACKOFF_SECONDS}

    def verified(self, key: str, address: str = "-") -> None:
        """A signature of ``key`` from ``address`` verified: its back-off ends and the pair has
        its own share from now on."""
        address = address_group(address)
        self._failures.pop(f"addr:{address}", None)
        self._failures.pop(f"{key}@{address}", None)
        pair = (key, address)
        self._trusted.pop(pair, None)
        self._trusted[pair] = None
        if len(self._trusted) > _TRUSTED_PAIRS:
            del self._trusted[next(iter(self._trusted))]


def _decrease(table: dict[str, int], name: str, n: int) -> None:
    left = table.get(name, 0) - n
    if left > 0:
        table[name] = left
    else:
        table.pop(name, None)
