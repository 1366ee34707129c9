"""An SBC with registration caching in front of the VIP (OpenSIPS mid_registrar, contact throttling).

An access element next to the load balancer (:mod:`simsip.engine.lb`): phones of fleets with
``server: sbc`` send their REGISTERs to it (it never fails, and sits next to the registrars: no
delay between them). For each REGISTER it decides, by :func:`simsip.protocols.trunk.sbc_forwards`,
whether to *absorb* it — a 200 of its own at once, granting the phone the expiry the registrar
would — or to *forward* it to the VIP asking ``max(e, outgoing_expires)``
(:func:`~simsip.protocols.trunk.sbc_upstream_expires`). Copies of a forwarded transaction are
forwarded too. The registrar's reply to a forwarded REGISTER comes back through the SBC
(:class:`Upstream`, the registrars' replies port in front of the phone bank): a 2xx records the
upstream lifetime (capped at ``outgoing_expires``) and the forward's time; every reply goes on to
the phone, a 2xx with ``min(e, upstream lifetime)``.

Exactness: the SBC's state is per phone. A registrar may send its reply ahead of time (a fast
path), so what a 2xx teaches the SBC is kept as a *pending* update stamped with the reply's time and
applied only when a later REGISTER of that phone reaches the SBC at or after that time — the same
in both engines. Its random draws are the reply paths of its own 200s, drawn on arrival.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from simsip.config.schema import Sbc as SbcCfg
from simsip.protocols.trunk import sbc_cycle, sbc_expires_out, sbc_forwards, sbc_upstream_expires


class CachingSbc:
    def __init__(self, cfg: SbcCfg, *, bank, grant, lookup_grace: float, receivers, net, streams, log):
        self.cfg = cfg
        self.bank = bank  # the phones' replies port (reply, path, lost, host_ok, fleet)
        self.grant = grant  # the registrar's grant rule (the SBC grants phones the same)
        self.grace = lookup_grace
        self.receivers = receivers
        self.net = net
        self.streams = streams
        self.log = log
        n = bank.n
        self.known_until = array("d", [-math.inf]) * n  # the SBC's own binding of the phone's contact
        self.last_fwd = array("d", [-math.inf]) * n  # last_reg_ts: the last forward that got a 2xx
        self.e_out = array("d", [0.0]) * n  # upstream lifetime from that 2xx
        self.fwd_tx = array("q", [-1]) * n  # the transaction last forwarded
        # transaction -> when it was forwarded (kept for the run: a reply may come late, after the phone
        # moved on, and still teach the SBC; one entry per forward, a few per phone and hour)
        self.fwd_at: dict[int, float] = {}
        self.pending: dict[int, list[tuple[float, float, float]]] = {}  # phone -> (valid from, last_fwd, e_out)
        self.absorbed = 0
        self.forwarded = 0
        self.absorbed_bins = log.bin("sbc_absorbed")
        self.forwarded_bins = log.bin("sbc_forwarded")

    # ------------------------------------------------------------------ equilibrium at t=0
    def start(self, store, fleets) -> None:
        """The registered phones' upstream state at t=0: each phone's last forward was one of its
        last ``m`` refreshes (m refreshes per forward cycle, :func:`sbc_cycle`), uniformly; the
        registrar's binding dates from that forward. Reads the phones' equilibrium records (the
        log's rows before any event) and saves the registrar-side bindings in ``store``."""
        log = self.log
        if not len(log.ph_p):
            return
        t = np.frombuffer(log.ph_t, dtype=np.float64)
        ph = np.frombuffer(log.ph_p, dtype=np.int64)
        bank = self.bank
        out = self.cfg.outgoing_expires
        for fp, fleet in zip(bank.params, fleets):
            if fleet.server != "sbc":
                continue
            sel = (ph >= fp.first) & (ph < fp.first + fp.count)
            if not sel.any():
                continue
            ids, last = ph[sel], t[sel]
            e = self.grant(fp.expires)
            r = fp.refresh.interval(e)
            g_up = self.grant(sbc_upstream_expires(e, out))
            e_out = sbc_expires_out(g_up, out)
            m = max(1, int(round(sbc_cycle(e_out, e, r) / r)))
            k = np.floor(self.streams.generator(f"sbc.start.{fleet.name}").random(ids.size) * m)
            fwd = last - k * r
            store.bulk_save(fwd, ids, fwd + g_up + self.grace)
            for p, f, lt in zip(ids.tolist(), fwd.tolist(), last.tolist()):
                self.last_fwd[p] = f
                self.e_out[p] = e_out
                self.known_until[p] = lt + e

    # ------------------------------------------------------------------ phones' side
    def _settle(self, p: int, now: float) -> None:
        ups = self.pending.get(p)
        if not ups:
            return
        keep = []
        for u in sorted(ups):
            t_valid, fwd, e_out = u
            if t_valid <= now:
                if fwd >= self.last_fwd[p]:
                    self.last_fwd[p] = fwd
                    self.e_out[p] = e_out
                e = self.grant(self.bank.fleet(p).expires)
                self.known_until[p] = max(self.known_until[p], t_valid + min(e, e_out))
            else:
                keep.append(u)
        if keep:
            self.pending[p] = keep
        else:
            del self.pending[p]

    def arrive(self, p: int, tx: int, expires: float) -> None:
        """A phone's REGISTER (or a copy) reaches the SBC."""
        now = self.bank.sim.env._now
        self._settle(p, now)
        e = self.grant(expires)
        if self.fwd_tx[p] != tx and not sbc_forwards(self.known_until[p] > now, now - self.last_fwd[p],
                                                     self.e_out[p], e):
            self.absorbed += 1
            self.absorbed_bins.add(now)
            self.known_until[p] = now + e
            bank = self.bank
            bank.reply(p, tx, now, 200, e, 0.0, bank.path())
            return
        if self.fwd_tx[p] != tx:
            self.fwd_tx[p] = tx
            self.fwd_at[tx] = now
        self.forwarded += 1
        self.forwarded_bins.add(now)
        net = self.net
        node = net.target(p, now) if net.lossy_arp else net.vip_mac
        if node < 0 or not self.bank.host_ok(node, False):
            self.bank.lost(p, tx)
            return
        self.receivers[node](p, tx, sbc_upstream_expires(e, self.cfg.outgoing_expires), None, False)

    # ------------------------------------------------------------------ registrars' side
    def upstream_reply(self, p: int, tx: int, t_sent: float, status: int, granted: float, retry_after: float,
                       back: float, ahead: bool = True) -> None:
        """The registrar's final response to a forwarded REGISTER, relayed to the phone."""
        if status < 300:
            e_out = sbc_expires_out(granted, self.cfg.outgoing_expires)
            t_f = self.fwd_at.get(tx, t_sent)
            self.pending.setdefault(p, []).append((t_sent, t_f, e_out))
            granted = min(self.grant(self.bank.fleet(p).expires), e_out)
        self.bank.reply(p, tx, t_sent, status, granted, retry_after, back, ahead)

    def report(self, counters: dict) -> None:
        counters["sbc_absorbed"] = self.absorbed
        counters["sbc_forwarded"] = self.forwarded


class Upstream:
    """The registrars' replies port when an SBC caches registrations: the phone bank's, except that
    replies to phones behind the SBC pass through it."""

    def __init__(self, bank, sbc: CachingSbc, behind: np.ndarray):
        self._bank = bank
        self._sbc = sbc
        self._behind = bytearray(np.asarray(behind, dtype=np.uint8).tobytes())  # per phone slot: behind the SBC
        for name in ("lost", "hold", "path", "source", "reliable", "carried", "authorized", "extra_work", "stopped"):
            if hasattr(bank, name):
                setattr(self, name, getattr(bank, name))

    def __getattr__(self, name: str):
        return getattr(self._bank, name)

    def reply(self, p: int, tx: int, t_sent: float, status: int, granted: float, retry_after: float, back: float,
              ahead: bool = True) -> None:
        if self._behind[p]:
            self._sbc.upstream_reply(p, tx, t_sent, status, granted, retry_after, back, ahead)
        else:
            self._bank.reply(p, tx, t_sent, status, granted, retry_after, back, ahead)


__all__ = ["CachingSbc", "Upstream"]
