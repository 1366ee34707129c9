#!/usr/bin/env python
"""Memory and speed of ``simsip trace infer`` on a large synthetic capture.

    python benchmarks/infer_memory.py --mb 1024     # write a ~1 GB pcap of REGISTER traffic, infer it
    python benchmarks/infer_memory.py --mb 64 --keep /tmp/big.pcap

The capture is written straight from byte templates (Ethernet/IPv4/UDP headers packed by hand,
checksums zero) so that it is quick to make: ``phones`` phones refreshing at 80 % of a 120 s
expiry, each REGISTER answered 2 ms later. :func:`simsip.trace.infer_scenario` then runs in a fresh
child process and its peak resident set (``os.wait4`` rusage) is reported next to the capture
size, with the packets per second. Printed as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

VIP = bytes([10, 0, 0, 100])
MAC = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


def _frame(src: bytes, dst: bytes, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 5060, 5060, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst) + udp
    return MAC + ip


def _register(aor: str, cseq: int) -> bytes:
    return (f"REGISTER sip:10.0.0.100 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bK-{aor}-{cseq}\r\n"
            f"From: <sip:{aor}@10.0.0.100>;tag=f\r\nTo: <sip:{aor}@10.0.0.100>\r\nCall-ID: {aor}-c\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: <sip:{aor}@10.1.0.1:5060>\r\nExpires: 120\r\n"
            "User-Agent: Yealink SIP-T46S 66.86.0.15\r\nContent-Length: 0\r\n\r\n").encode()


def _ok(aor: str, cseq: int) -> bytes:
    return (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bK-{aor}-{cseq}\r\n"
            f"From: <sip:{aor}@10.0.0.100>;tag=f\r\nTo: <sip:{aor}@10.0.0.100>;tag=s\r\nCall-ID: {aor}-c\r\n"
            f"CSeq: {cseq} REGISTER\r\nContact: <sip:{aor}@10.1.0.1:5060>;expires=120\r\n"
            "Server: kamailio (5.8)\r\nContent-Length: 0\r\n\r\n").encode()


def write_capture(path: Path, megabytes: float, phones: int = 20_000) -> int:
    """Write a pcap of about ``megabytes`` MB; returns the packet count."""
    target = int(megabytes * 1e6)
    period = 0.8 * 120.0
    packets = 0
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        size = 24
        cseq = 0
        while size < target:
            cseq += 1
            for k in range(phones):
                t = 1_700_000_000.0 + (cseq - 1) * period + k * period / phones
                aor = f"p{k}"
                src = bytes([10, 1, k // 256 % 256, k % 256])
                for ts, frame in ((t, _frame(src, VIP, _register(aor, cseq))),
                                  (t + 0.002, _frame(VIP, src, _ok(aor, cseq)))):
                    sec = int(ts)
                    fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
                    fh.write(frame)
                    size += 16 + len(frame)
                    packets += 1
                if size >= target:
                    break
    return packets


def _child(path: str) -> None:
    from simsip.trace import infer_scenario

    t = time.perf_counter()
    inf = infer_scenario(path, measure=False)
    f = inf.fleets[0]
    print(json.dumps({"packets": inf.packets, "seconds": time.perf_counter() - t, "phones": f.phones,
                      "refresh_fraction": f.refresh_fraction.value, "n": f.refresh_fraction.n}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=256.0)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    tmp = None
    path = args.keep
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "big.pcap"
    t = time.perf_counter()
    write_capture(path, args.mb)
    written = time.perf_counter() - t
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        os.execv(sys.executable, [sys.executable, __file__, "--child", str(path)])
    os.close(w)
    out = os.fdopen(r).read()
    _, status, usage = os.wait4(pid, 0)
    result = json.loads(out.strip().splitlines()[-1]) if status == 0 else {"error": status}
    result.update({"capture_mb": round(path.stat().st_size / 1e6, 1), "write_seconds": round(written, 1),
                   "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)})
    if "seconds" in result:
        result["packets_per_s"] = round(result["packets"] / result["seconds"])
    print(json.dumps(result))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
