"""DNS: the ordered target list each phone builds from SRV (RFC 2782) or A records.

RFC 2782: targets are tried by priority (lowest first); within one priority the order is a
weighted random permutation (each next pick with probability weight / remaining weight). Each phone
resolves on its own, so each gets its own permutation; phones sharing a permutation share one tuple.
A records (round robin): the client gets the records in a random order and takes the first — a
uniform random permutation, no health. RFC 3263 §4.3: after a failure the same request goes to
the next element of the list.
"""

from __future__ import annotations

import numpy as np


def target_orders(entries: list[tuple[int, int, int]], n: int, gen: np.random.Generator):
    """``entries`` = [(node, priority, weight)]: per phone an ordered tuple of nodes.

    Returns (orders, order_id): the distinct tuples and, per phone, the index of its tuple.
    """
    cols = []
    for prio in sorted({e[1] for e in entries}):
        group = [e for e in entries if e[1] == prio]
        nodes = np.array([e[0] for e in group], dtype=np.int64)
        if len(group) == 1:
            cols.append(np.repeat(nodes[None, :], n, axis=0))
            continue
        # Efraimidis–Spirakis: sorting u^(1/w) descending is the sequential weighted draw
        w = np.array([max(e[2], 1e-6) for e in group], dtype=float)
        keys = gen.random((n, len(group))) ** (1.0 / w[None, :])
        cols.append(nodes[np.argsort(-keys, axis=1)])
    rows = np.concatenate(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)
    uniq, inv = np.unique(rows, axis=0, return_inverse=True)
    return [tuple(int(x) for x in r) for r in uniq], inv.reshape(-1).astype(np.int64)
