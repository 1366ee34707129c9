"""The database under a shared registration store, and its replication to a replica.

With a shared store every registrar writes bindings to, and looks them up in, one database
(Kamailio usrloc db_mode 3, Asterisk PJSIP realtime contacts). That database has its own HA:
a primary that replicates to a replica — asynchronously (writes applied a lag later, so a crash
of the primary loses the writes still in flight), semi-synchronously (the primary waits for the
replica's acknowledgement; when the replica stops answering, writes block for the semi-sync
timeout and then the primary *silently reverts to async*), or synchronously (no write is lost,
but none succeeds while the replica is down). When the primary dies the replica is promoted
after ``failover_time``; until then registrars can neither save nor look up, so every phone is
unreachable and every REGISTER fails (500).

A registrar draws a write's replication lag when the REGISTER arrives (:meth:`draw_lag`), so the
order in which completions are processed never changes the lags. Promotion after a primary crash
runs on the control clock; the replica keeps the latest-stamped value of each binding.

``galera`` (PXC/MariaDB Galera, percona/pxc-docs crash-recovery.md, wsrep-provider-index.md): the
cluster has ``nodes`` voting members. When one that the registrars do not write to dies (the
"replica"), writes stall until it is suspected and evicted, ``suspect_timeout`` later (the stalled
writes are acknowledged together then, as under semi-sync). If the rest are more than half, writes
go on (Scenario 4); if not (2 nodes without garbd) the survivor becomes non-primary: every write
fails at once (simplification: Galera would hang it until the view change, then fail it) and
lookups fail from the view change on ("ERROR 1047 WSREP has not yet prepared node"), until the
member returns ("the cluster is formed again automatically", Scenario 5) or an operator
bootstraps it (``bootstrap_after``: pc.bootstrap=true). A dead primary of a 2-node cluster is
likewise never replaced until that bootstrap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simsip.engine.dists import sampler

if TYPE_CHECKING:  # pragma: no cover
    from simsip.engine.registrar import Store


class Database:
    def __init__(self, cfg, store: "Store", *, sim, clock, topo, streams, log):
        self.sim = sim
        self.clock = clock
        self.topo = topo
        self.log = log
        self.cfg = cfg
        self.store = store
        self.mode = cfg.replication
        self.replica = list(store.until) if self.mode != "none" else None
        self.replica_at = list(store.at) if self.mode != "none" else None
        self.primary_up = True
        self.replica_up = self.mode != "none"
        self.block_until = float("-inf")  # semi-sync: writes wait for the timeout, then go async
        self.lag = sampler(cfg.lag, streams("database.replication"))
        self.lagged = self.mode in ("async", "semisync")
        self.epoch = 0
        self.inflight = 0
        self.lost_writes = 0
        self.failed_writes = 0
        self.disk: list[float] | None = None
        self.galera = self.mode == "galera"
        self.quorate = True  # galera: the node the registrars use is in the primary component
        self.non_primary_since: float | None = None

    def _majority(self, alive: int) -> bool:
        """Galera's quorum: the members still in touch are more than half of the last view."""
        return 2 * alive > self.cfg.nodes

    def sync_initial(self) -> None:
        if self.replica is not None:
            self.replica = list(self.store.until)
            self.replica_at = list(self.store.at)

    def grow(self, extra: int) -> None:
        if self.replica is not None:
            self.replica.extend([float("-inf")] * extra)
            self.replica_at.extend([float("-inf")] * extra)

    def holds(self, t: float) -> bool:
        """Would a write issued at ``t`` wait for the semi-sync timeout? All such writes are
        acknowledged at the same instant, so their completions are never applied ahead (the order
        of equal-time replies is the order of the completions)."""
        return self.mode in ("semisync", "galera") and not self.replica_up and t < self.block_until

    def draw_lag(self) -> float:
        """The replication lag of one write, drawn when its REGISTER arrives."""
        return self.lag() if self.lagged else 0.0

    def _set_replica(self, t: float, phone: int, until: float) -> None:
        if t >= self.replica_at[phone]:
            self.replica[phone] = until
            self.replica_at[phone] = t

    # ------------------------------------------------------------------ writes
    def admit(self, now: float) -> float | None:
        """When a write issued now is acknowledged (None: it fails)."""
        if not self.primary_up or not self.quorate or (self.mode == "sync" and not self.replica_up):
            self.failed_writes += 1
            return None
        if self.mode in ("semisync", "galera") and not self.replica_up and now < self.block_until:
            return self.block_until  # waiting for an ack that never comes, until the timeout
        return now

    def replicate(self, now: float, phone: int, until: float, lag: float) -> None:
        if self.replica is None or not self.replica_up:
            return
        if self.mode == "async" or (self.mode == "semisync" and not self.replica_up):
            self.inflight += 1
            self.sim.phone_at(now + lag, self._apply, phone, self.epoch, now, until)
        else:  # sync, or semi-sync with a healthy replica: on the replica before the ack
            self._set_replica(now, phone, until)

    def _apply(self, phone: int, epoch: int, t_write: float, until: float) -> None:
        if epoch != self.epoch:
            return  # counted as lost when the primary died
        self.inflight -= 1
        if self.replica_up:
            self._set_replica(t_write, phone, until)

    # ------------------------------------------------------------------ bulk refreshes
    def bulk_problem(self) -> str | None:
        """Why writes to this database cannot be applied in bulk (None: they can). An async or
        semi-sync replica applies each write a drawn lag later (an event per write, and a crash of
        the primary loses those in flight), so those stay on the event path."""
        if self.lagged:
            return f"shared database with {self.mode} replication"
        return None

    def writable(self) -> bool:
        """Every write issued now is acknowledged at once (and, with a replica, is on it first):
        the primary is up and quorate and any replica is answering. Only control events change it."""
        return self.primary_up and self.quorate and (self.replica is None or self.replica_up)

    def bulk_replicate(self, t, phones, until) -> None:
        """The replica's copy of many writes (numpy arrays) while :meth:`writable`: what
        :meth:`replicate` does for each (a sync or galera replica holds it before the ack)."""
        if self.replica is None:
            return
        for tt, p, u in zip(t.tolist(), phones.tolist(), until.tolist()):
            self._set_replica(tt, p, u)

    # ------------------------------------------------------------------ faults
    def crash_primary(self, t: float) -> None:
        self.primary_up = False
        self.lost_writes += self.inflight
        self.inflight = 0
        self.epoch += 1
        self.disk = list(self.store.until)  # what the dead primary had committed
        self.store.clear(t)  # nothing can be looked up
        if self.replica is not None and self.replica_up:
            if self.galera and not self._majority(self.cfg.nodes - 1):
                # the survivor alone is not a primary component: nothing to fail over to until bootstrapped
                if self.cfg.bootstrap_after is not None:
                    self.clock.call_at(t + max(self.cfg.failover_time, self.cfg.bootstrap_after), self._promote,
                                       self.epoch)
            else:
                self.clock.call_at(t + self.cfg.failover_time, self._promote, self.epoch)
        self.topo.changed(t)

    def _promote(self, epoch: int) -> None:
        if epoch != self.epoch or self.primary_up:
            return
        t = self.sim.env._now
        self._load(t, self.replica)
        self.replica_up = False  # the old primary is gone; it rejoins as replica when repaired
        self.primary_up = True
        self.disk = None
        self.log.checks.append((t, "database", "replica promoted"))

    def _load(self, t: float, values: list[float]) -> None:
        st = self.store
        for p, u in enumerate(values):
            if u > t:
                st.save(t, p, u)

    def repair_primary(self, t: float) -> None:
        if self.primary_up:
            # promoted meanwhile: the old primary comes back as the replica
            if self.replica is not None:
                self.replica = list(self.store.until)
                self.replica_at = list(self.store.at)
                self.replica_up = True
            return
        self.epoch += 1
        if self.disk is not None:
            self._load(t, self.disk)  # same primary back with what it had committed
        self.primary_up = True
        self.disk = None

    def replica_down(self, t: float) -> None:
        if self.replica is None:
            return
        self.replica_up = False
        self.epoch += 1
        self.inflight = 0
        if self.mode == "semisync":
            self.block_until = t + self.cfg.semisync_timeout
        elif self.galera:
            self.block_until = t + self.cfg.suspect_timeout  # writes wait for the view change
            if not self._majority(self.cfg.nodes - 1):
                self.quorate = False  # writes fail from now on (see the module notes)
                self.non_primary_since = t
                self.clock.call_at(self.block_until, self._non_primary, self.epoch)
                if self.cfg.bootstrap_after is not None:
                    self.clock.call_at(t + self.cfg.bootstrap_after, self._regain_quorum, self.epoch)

    def _non_primary(self, epoch: int) -> None:
        """The view change: the survivor is non-primary and answers no query, lookups included."""
        if epoch != self.epoch or self.quorate or not self.primary_up:
            return
        t = self.sim.env._now
        self.disk = list(self.store.until)
        self.store.clear(t)
        self.log.checks.append((t, "database", "non-primary (no quorum)"))
        self.topo.changed(t)

    def _regain_quorum(self, epoch: int) -> None:
        if epoch != self.epoch or self.quorate:
            return
        t = self.sim.env._now
        self.quorate = True
        if self.disk is not None and self.primary_up:
            self._load(t, self.disk)
            self.disk = None
        self.log.checks.append((t, "database", "primary component again"))
        self.topo.changed(t)

    def replica_repaired(self, t: float) -> None:
        if self.replica is None:
            return
        if self.galera and not self.quorate:
            self._regain_quorum(self.epoch)  # the member is back: the primary component re-forms
        self.replica = list(self.store.until)  # catches up from the primary
        self.replica_at = list(self.store.at)
        self.replica_up = True
        self.block_until = float("-inf")

    def report(self, counters: dict) -> None:
        counters["db_writes_lost"] = self.lost_writes
        counters["db_writes_failed"] = self.failed_writes
