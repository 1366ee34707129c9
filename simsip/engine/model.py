"""One place wires the components of a scenario and runs one replication.

Components own structure (a registrar node has workers and a store, a VRRP instance has a
priority), processes own behaviour, and this module connects them: phones send through the
network to whichever node the VIP's MAC leads to; the node accepts only while it is up and holds
the VIP; faults crash and repair nodes; every change of who serves the VIP is logged so that
reachability can be computed after the run.
"""

from __future__ import annotations

from simsip.config.schema import Scenario
from simsip.engine.core import Sim
from simsip.engine.network import Network
from simsip.engine.phones import PhoneBank
from simsip.engine.records import FaultRecord, RunLog, StoreLog
from simsip.engine.registrar import RegistrarNode, Store
from simsip.engine.vrrp import DOWN, MASTER, VrrpInstance
from simsip.rng import Streams


class Model:
    """A built scenario for one replication (``run`` it once)."""

    def __init__(self, cfg: Scenario, replication: int = 0, seed: int | None = None):
        self.cfg = cfg
        self.replication = replication
        self.seed = cfg.seed if seed is None else seed
        self.streams = Streams(self.seed, replication)
        self.sim = Sim()
        nodes = cfg.ha.nodes
        self.log = RunLog(horizon=cfg.duration, res=cfg.output.resolution, node_names=[n.name for n in nodes])
        n_phones = cfg.phones
        # binding stores: one per node, or one shared by all
        if cfg.registrar.data == "shared":
            self.log.stores = [StoreLog()]
            shared = Store(0, n_phones, self.log.stores[0])
            stores = [shared] * len(nodes)
            self.log.store_of_node = [0] * len(nodes)
        else:
            self.log.stores = [StoreLog() for _ in nodes]
            stores = [Store(i, n_phones, self.log.stores[i]) for i in range(len(nodes))]
            self.log.store_of_node = list(range(len(nodes)))
        self.network = Network(self, cfg.network, n_phones)
        self.registrars = [RegistrarNode(self, i, n.name, cfg.registrar, stores[i], self.log) for i, n in enumerate(nodes)]
        self.vrrp = [VrrpInstance(self, i, n.name, n.priority, cfg.ha.vrrp) for i, n in enumerate(nodes)]
        for reg, v in zip(self.registrars, self.vrrp):
            reg.vrrp = v
        self.phones = PhoneBank(self, cfg.fleets, self.log)
        self._serving = None
        self._node_epoch = [0] * len(nodes)
        # times at which a node may crash or restart (scheduled faults and repairs); before the
        # first of them, a REGISTER's completion cannot be disturbed and is applied directly
        self._disruptions = sorted(
            [f.at for f in cfg.faults] + [f.at + f.repair_after for f in cfg.faults if f.repair_after is not None]
        )
        self.calm_until = self._disruptions[0] if self._disruptions else float("inf")
        self._partitions: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ topology queries
    def node_index(self, name: str) -> int:
        for i, r in enumerate(self.registrars):
            if r.name == name:
                return i
        raise KeyError(name)

    def epoch_of(self, node: int) -> int:
        return self._node_epoch[node]

    def link_up(self, a: int, b: int) -> bool:
        return (min(a, b), max(a, b)) not in self._partitions

    def vip_owner(self) -> int:
        """The node the VIP's MAC should lead to: an up master (the highest priority if several)."""
        best, prio = -1, -1
        for v in self.vrrp:
            if v.state == MASTER and v.priority > prio:
                best, prio = v.index, v.priority
        return best

    def serving_node(self) -> int:
        """The node that answers calls routed to the VIP (ingress sees the last GARP): -1 = none."""
        n = self.network.vip_mac
        if n >= 0 and self.vrrp[n].state == MASTER and self.registrars[n].up:
            return n
        return -1

    def update_serving(self, t: float) -> None:
        s = self.serving_node()
        if s != self._serving:
            self._serving = s
            self.log.serving.append((t, s))

    # ------------------------------------------------------------------ faults
    def _advance_calm(self, t: float) -> None:
        import bisect

        k = bisect.bisect_right(self._disruptions, t)
        self.calm_until = self._disruptions[k] if k < len(self._disruptions) else float("inf")

    def crash_node(self, node: int, t: float) -> None:
        self._node_epoch[node] += 1
        self.registrars[node].crash(t)
        self.vrrp[node].crash()
        self.update_serving(t)

    def repair_node(self, node: int, t: float) -> None:
        self._node_epoch[node] += 1
        self.registrars[node].restart(t)
        self.vrrp[node].start(as_master=False)
        self.log.repairs.append((t, self.registrars[node].name))
        self.update_serving(t)

    def _fault_process(self, index: int, fault):
        env = self.sim.env
        if fault.at > env.now:
            yield env.timeout(fault.at - env.now)
        target = fault.node
        if target == "master":
            node = self.vip_owner()
        elif target == "backup":
            node = next((v.index for v in self.vrrp if v.state not in (MASTER, DOWN)), -1)
        else:
            node = self.node_index(target)
        rec = FaultRecord(index=index, kind=fault.kind, node=self.registrars[node].name if node >= 0 else "", time=env.now)
        self.log.faults.append(rec)
        self._advance_calm(env.now)
        if node < 0 or not self.registrars[node].up:
            return  # nothing to crash (already down / no master): recorded, no effect
        self.crash_node(node, env.now)
        if fault.repair_after is not None:
            yield env.timeout(fault.repair_after)
            self._advance_calm(env.now)
            if not self.registrars[node].up:
                rec.repair_time = env.now
                self.repair_node(node, env.now)

    # ------------------------------------------------------------------ run
    def run(self) -> RunLog:
        cfg = self.cfg
        env = self.sim.env
        # VRRP at equilibrium: the highest priority node is master, adverts at a random phase
        order = sorted(range(len(self.vrrp)), key=lambda i: -self.vrrp[i].priority)
        master = order[0]
        phase = self.streams("vrrp.phase").random() * cfg.ha.vrrp.advert_int
        last_advert = -phase
        self.vrrp[master].start(as_master=True, last_advert=last_advert)
        for i in order[1:]:
            v = self.vrrp[i]
            v.start(as_master=False)
            v.down_deadline = last_advert + v.mdi
        initial_store = self.registrars[master].store
        self.phones.start(cfg.registrar.grant, initial_store)
        for i, f in enumerate(cfg.faults):
            env.process(self._fault_process(i, f))
        self.update_serving(0.0)
        try:
            self.sim.run(until=cfg.duration)
        except Exception as exc:  # recorded; the caller writes what exists
            self.log.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._finish()
        return self.log

    def _finish(self) -> None:
        ph = self.phones
        c = self.log.counters
        c["transactions_started"] = ph.started
        c["transactions_succeeded"] = ph.succeeded
        c["transactions_failed"] = ph.failed
        c["transactions_timed_out"] = ph.timed_out
        c["transactions_open"] = sum(1 for p in range(ph.n) if ph.tx[p] >= 0) if ph.n <= 2_000_000 else -1
        c["phones_gave_up"] = ph.gave_up
        c["stray_responses"] = ph.stray
        for r in self.registrars:
            c[f"served_{r.name}"] = r.served
            c[f"rejected_{r.name}"] = r.rejected
        self.log.counters = c


def run_replication(cfg: Scenario, replication: int, seed: int | None = None) -> RunLog:
    return Model(cfg, replication, seed).run()


__all__ = ["Model", "run_replication", "DOWN"]
