"""Start-up probe for the preload measurement, run inside the prober namespace:
``python preload_probe.py TARGET PORT LAST_AOR INTERVAL OUT LOCAL_IP``.

Every ``INTERVAL`` seconds it sends one ``OPTIONS sip:LAST_AOR@VIP`` (the registrar answers 200
once it holds a binding for that AOR, 404 before; skipped when LAST_AOR is ``-``) and one REGISTER
of the AOR ``preloadprobe`` (answered 200 by any worker that reads it), both to ``TARGET:PORT``, no
retransmissions. Before Kamailio binds its socket the probes are lost (ICMP port unreachable);
once it is bound they queue in its receive buffer until a worker reads them. Each response is
written to OUT as ``recv_epoch method status`` (one line, flushed). Stops on SIGTERM.
"""
from __future__ import annotations

import select
import signal
import socket
import sys
import time

VIP = "10.99.0.10"


def _options(aor: str, local: str, port: int, n: int) -> bytes:
    return (f"OPTIONS sip:{aor}@{VIP} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local}:{port};branch=z9hG4bK-pl-o{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:preloadprobe@{local}>;tag=pl{n}\r\n"
            f"To: <sip:{aor}@{VIP}>\r\n"
            f"Call-ID: pl-o{n}@simsip\r\n"
            f"CSeq: {n} OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def _register(local: str, port: int, n: int) -> bytes:
    return (f"REGISTER sip:{VIP} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local}:{port};branch=z9hG4bK-pl-r{n}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:preloadprobe@{VIP}>;tag=plr\r\n"
            f"To: <sip:preloadprobe@{VIP}>\r\n"
            f"Call-ID: pl-r{n}@simsip\r\n"
            f"CSeq: {n} REGISTER\r\n"
            f"Contact: <sip:preloadprobe@{local}:{port}>\r\n"
            "Expires: 3600\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def _status(data: bytes) -> tuple[str, int]:
    text = data.decode("latin-1", "replace")
    first = text.split("\r\n", 1)[0].split()
    status = int(first[1]) if len(first) > 1 and first[1].isdigit() else 0
    method = ""
    for line in text.split("\r\n"):
        if line.lower().startswith("cseq:"):
            parts = line.split()
            method = parts[-1] if len(parts) >= 3 else ""
            break
    return method, status


def main(argv: list[str]) -> int:
    target, port, last_aor, interval, out, local = (argv[1], int(argv[2]), argv[3], float(argv[4]),
                                                     argv[5], argv[6])
    lport = 5072
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((local, lport))
    s.setblocking(False)
    n = 0
    with open(out, "w") as f:
        nxt = time.time()
        while not stop:
            now = time.time()
            if now >= nxt:
                n += 1
                for msg in ([_options(last_aor, local, lport, n)] if last_aor != "-" else []) + \
                        [_register(local, lport, n)]:
                    try:
                        s.sendto(msg, (target, port))
                    except OSError:
                        pass  # ICMP port unreachable of an earlier probe: nobody listens yet
                nxt += interval
                if nxt < now:
                    nxt = now + interval
            try:
                r, _, _ = select.select([s], [], [], max(0.0, min(nxt - time.time(), 0.05)))
            except InterruptedError:
                continue
            if r:
                while True:
                    try:
                        data = s.recv(65535)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    except OSError:
                        break
                    t = time.time()
                    method, status = _status(data)
                    f.write(f"{t:.6f} {method} {status}\n")
                    f.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
