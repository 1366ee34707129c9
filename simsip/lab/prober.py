"""OPTIONS prober, run inside the prober namespace:
``python prober.py VIP N INTERVAL OUT [LOCAL_IP [EXTRA_AORS [PORT]]]``.

Every ``INTERVAL`` seconds one round sends ``OPTIONS sip:ph<i>@VIP`` for i = 1..N, then one for
each user in the comma-separated ``EXTRA_AORS`` (the baresip UAs), with no retransmissions. Probes go to VIP:PORT (default 5060; the lab's capacity runs give the registrar a probe socket of its
own on 5061). The node holding the VIP answers 200 if it has a valid binding for the AOR,
404 if not. Each probe is written to OUT as CSV ``round,aor,sent_epoch,status,recv_epoch``
(status 0 and empty recv_epoch when no answer came before the round ended). A round goes out in
bursts of ``PACE_EVERY`` probes ``PACE_SLEEP`` s apart. Stops on SIGTERM.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time


#: a round is sent in bursts of PACE_EVERY probes PACE_SLEEP s apart (500 AORs: ~50 ms), so that a
#: round never overflows the receive buffer of the registrar socket it asks (a burst of 20 probes is
#: ~46 KB of skb truesize, a fifth of the kernel's 212992 B default, drained within the pause)
PACE_EVERY = 20
PACE_SLEEP = 0.002


def main(argv: list[str]) -> int:
    vip, n, interval, out = argv[1], int(argv[2]), float(argv[3]), argv[4]
    local_ip = argv[5] if len(argv) > 5 else "0.0.0.0"
    extra = [a for a in (argv[6].split(",") if len(argv) > 6 else []) if a]
    dport = int(argv[7]) if len(argv) > 7 and argv[7] else 5060
    aors = [f"ph{i}" for i in range(1, n + 1)] + extra
    port = 5070
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((local_ip, port))
    s.setblocking(False)
    f = open(out, "w", buffering=1)
    f.write("round,aor,sent_epoch,status,recv_epoch\n")
    pid = os.getpid()
    start = time.time()
    rnd = 0
    while not stop:
        round_start = start + rnd * interval
        now = time.time()
        if round_start > now:
            time.sleep(round_start - now)
        pending: dict[str, tuple[str, float]] = {}
        for i, aor in enumerate(aors, 1):
            cid = f"probe-{pid}-{rnd}-{i}"
            msg = (
                f"OPTIONS sip:{aor}@{vip} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {local_ip}:{port};branch=z9hG4bK-pr{pid}-{rnd}-{i}\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:prober@{local_ip}>;tag=pr{pid}\r\n"
                f"To: <sip:{aor}@{vip}>\r\n"
                f"Call-ID: {cid}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            t = time.time()
            try:
                s.sendto(msg.encode(), (vip, dport))
            except OSError:
                pass
            pending[cid] = (aor, t)
            if i % PACE_EVERY == 0 and i < len(aors):
                time.sleep(PACE_SLEEP)  # let the registrar's probe worker drain its buffer
        deadline = round_start + interval
        while pending and not stop:
            left = deadline - time.time()
            if left <= 0:
                break
            try:
                r, _, _ = select.select([s], [], [], left)
            except InterruptedError:
                continue
            if not r:
                continue
            while True:
                try:
                    data = s.recv(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                except OSError:
                    break
                t = time.time()
                text = data.decode("latin-1")
                first = text.split("\r\n", 1)[0]
                if not first.startswith("SIP/2.0 "):
                    continue
                try:
                    status = int(first.split()[1])
                except (IndexError, ValueError):
                    continue
                if status < 200:
                    continue
                cid = ""
                for line in text.split("\r\n"):
                    if line.lower().startswith(("call-id:", "i:")):
                        cid = line.split(":", 1)[1].strip()
                        break
                if cid in pending:
                    aor, ts = pending.pop(cid)
                    f.write(f"{rnd},{aor},{ts:.6f},{status},{t:.6f}\n")
        for cid, (aor, ts) in pending.items():
            f.write(f"{rnd},{aor},{ts:.6f},0,\n")
        rnd += 1
    f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
