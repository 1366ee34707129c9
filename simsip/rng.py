"""Named random streams.

Every component draws from its own stream, derived from (run seed, replication number, component
name) with NumPy's SeedSequence — the ns-3 "RngRun + named stream" discipline. Adding a component
or drawing more numbers in one place never shifts the numbers another component sees, so two
configs that differ in one knob share their randomness elsewhere (common random numbers), and the
same config + seed gives the same results on any machine. There is no global random state.

Draws inside the event loop are buffered: a stream hands out numbers from blocks drawn in one
vectorised call, which keeps the per-event cost low without changing reproducibility (the order of
draws is fixed by the deterministic event order).
"""

from __future__ import annotations

import hashlib

import numpy as np

_BLOCK = 4096


def stream_key(name: str) -> int:
    """A stable 64-bit integer for a stream name (independent of PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def generator(seed: int, replication: int, name: str) -> np.random.Generator:
    """The generator of one named stream for one replication."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, replication, stream_key(name)])))


def wall_clock_phase(seed: int, replication: int) -> float:
    """The wall clock's fractional second at simulated t = 0, uniform in [0, 1), one per replication
    (stream ``wall_clock``): every component that keeps time in whole seconds (a registrar's
    ``expiry_clock: whole_seconds``, the phones' equilibrium bindings on it) reads the same value."""
    return float(generator(seed, replication, "wall_clock").random())


class Stream:
    """A named stream with buffered scalar draws (uniform, exponential, normal).

    The uniform and exponential blocks are kept as the arrays they were drawn as (what
    :meth:`ahead` hands out views of) and, for the scalar draws, as a list of the same numbers,
    made from the array when a scalar draw needs it (None until then)."""

    __slots__ = ("name", "gen", "_u", "_ui", "_e", "_ei", "_n", "_ni", "_ua", "_ea")

    def __init__(self, seed: int, replication: int, name: str):
        self.name = name
        self.gen = generator(seed, replication, name)
        self._u: list[float] | None = []
        self._ui = 0
        self._e: list[float] | None = []
        self._ei = 0
        self._n: list[float] = []
        self._ni = 0
        self._ua = _EMPTY
        self._ea = _EMPTY

    def random(self) -> float:
        """Uniform on [0, 1)."""
        i, u = self._ui, self._u
        if u is None or i >= len(u):
            u, i = self._scalars("u")
        self._ui = i + 1
        return u[i]

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def exponential(self, mean: float) -> float:
        i, e = self._ei, self._e
        if e is None or i >= len(e):
            e, i = self._scalars("e")
        self._ei = i + 1
        return e[i] * mean

    def _scalars(self, kind: str) -> tuple[list[float], int]:
        """The scalar list of ``kind`` (``"u"``, ``"e"``) and the index of its next draw, when the
        list is not made yet (after :meth:`ahead`: from the block array) or is used up (a new
        block, drawn as :meth:`ahead` draws them)."""
        if kind == "u":
            arr, lst, i, draw = self._ua, self._u, self._ui, self.gen.random
        else:
            arr, lst, i, draw = self._ea, self._e, self._ei, self.gen.standard_exponential
        if lst is None:
            lst = arr.tolist()
        if i >= len(lst):
            arr = draw(_BLOCK)
            lst, i = arr.tolist(), 0
        if kind == "u":
            self._ua, self._u = arr, lst
        else:
            self._ea, self._e = arr, lst
        return lst, i

    def normal(self) -> float:
        i = self._ni
        if i >= len(self._n):
            self._n = self.gen.standard_normal(_BLOCK).tolist()
            i = 0
        self._ni = i + 1
        return self._n[i]

    def ahead(self, kind: str, n: int) -> np.ndarray:
        """The next ``n`` draws of ``kind`` (``"u"`` uniform, ``"e"`` standard exponential) as an
        array, without consuming them: the same numbers the next ``n`` scalar calls would return
        (blocks are drawn exactly as the scalar path draws them). :meth:`skip` consumes them.
        The array is a read-only view of the stream's buffer."""
        if kind == "u":
            arr, i, gen = self._ua, self._ui, self.gen.random
        else:
            arr, i, gen = self._ea, self._ei, self.gen.standard_exponential
        if arr.size - i < n:
            parts = [arr[i:]]
            have = arr.size - i
            while have < n:
                a = gen(_BLOCK)
                parts.append(a)
                have += a.size
            arr = np.concatenate(parts)
            arr.flags.writeable = False
            if kind == "u":
                self._u, self._ua, self._ui = None, arr, 0  # the list is made again if a scalar draw comes
            else:
                self._e, self._ea, self._ei = None, arr, 0
            i = 0
        out = arr[i : i + n]
        out.flags.writeable = False
        return out

    def skip(self, kind: str, k: int) -> None:
        """Consume ``k`` draws of ``kind`` that :meth:`ahead` made available."""
        if kind == "u":
            self._ui += k
        else:
            self._ei += k


_EMPTY = np.zeros(0)


class Streams:
    """The factory of named streams for one replication of one run."""

    def __init__(self, seed: int, replication: int):
        self.seed = int(seed)
        self.replication = int(replication)
        self._made: dict[str, Stream] = {}

    def __call__(self, name: str) -> Stream:
        if name not in self._made:
            self._made[name] = Stream(self.seed, self.replication, name)
        return self._made[name]

    def generator(self, name: str) -> np.random.Generator:
        """A plain NumPy generator for vectorised draws (its own name space: ``name#np``)."""
        return generator(self.seed, self.replication, name + "#np")


_M64 = (1 << 64) - 1


class PerPhoneStream:
    """Uniform draws in [0, 1) keyed by (stream name, phone, that phone's draw count).

    A shared stream hands its numbers out in the order the draws happen, so whether one phone's
    failure is processed before or after another's would change both phones' numbers. Here each
    phone has its own counter-based sequence (a SplitMix64 hash of the key, the phone and the
    count), so a phone's n-th draw is the same number in whatever order the engine processes
    events — the property the exact-vs-fast twin runs rely on. Used where draws are rare (retry
    waits after failures), not in the hot path.
    """

    __slots__ = ("key", "count")

    def __init__(self, seed: int, replication: int, name: str, n: int):
        self.key = counter_key(seed, replication, name)
        self.count = [0] * n

    def grow(self, extra: int) -> None:
        self.count.extend([0] * extra)

    def random(self, p: int) -> float:
        c = self.count[p]
        self.count[p] = c + 1
        # SplitMix64: the phone's own seed (a hash of key and phone), then its (c+1)-th output
        x = _mix64((phone_hash(self.key, p) + (c + 1) * _GOLDEN) & _M64)
        return (x >> 11) * (1.0 / 9007199254740992.0)


_GOLDEN = 0x9E3779B97F4A7C15


def counter_key(seed: int, replication: int, name: str) -> int:
    """The 64-bit key of a counter-based stream ``name`` in one replication (:class:`PerPhoneStream`)."""
    h = hashlib.blake2b(f"{int(seed)}/{int(replication)}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def phone_hash(key: int, phone: int) -> int:
    """Phone ``phone``'s own 64-bit hash under ``key`` (SplitMix64 of key + (phone + 1)·golden):
    the seed of its :class:`PerPhoneStream` sequence, or a fixed per-phone choice (a serializer)."""
    return _mix64((key + (int(phone) + 1) * _GOLDEN) & _M64)


def _mix64(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)
