"""Tolerant SIP message parsing for trace import.

A SIP message (RFC 3261 §7) is a start line, header lines and an optional body:

* a *request* starts with ``METHOD Request-URI SIP/2.0`` (``REGISTER sip:lab SIP/2.0``),
* a *response* starts with ``SIP/2.0 code reason`` (``SIP/2.0 200 OK``).

A transaction is identified by the top ``Via`` ``branch`` parameter together with ``Call-ID``
and ``CSeq`` (sequence number and method); retransmissions repeat all three. A registration's
lifetime is granted by the registrar in the 200 OK, either per binding
(``Contact: <...>;expires=60``) or globally (``Expires: 60``); the Contact parameter takes
precedence (RFC 3261 §10.2.4).
Headers may use compact one-letter names (``i`` Call-ID, ``v`` Via, ``f`` From, ``t`` To,
``m`` Contact, ``l`` Content-Length, ...), may be folded over several lines and may be repeated
or comma-joined.

Captures contain garbage: truncated datagrams, other protocols on port 5060, fuzzers. The parser
therefore never raises: :func:`parse_sip` returns ``None`` for anything that is not a usable SIP
message (no start line, or no ``Call-ID``/``CSeq``, which RFC 3261 §8.1.1 makes mandatory).

Two kinds of SIP traffic cannot be read from the wire and are told apart from garbage, so that a
user learns why a capture shows no SIP (:func:`unreadable`, :func:`unreadable_notes`):

* **HEP** (the Homer Encapsulation Protocol of HOMER / sipcapture, ``HEP3`` chunks, usually UDP or
  TCP port 9060): SIP copied to a capture server, wrapped with its original addresses and times;
  counted as ``hep``;
* **TLS** (SIP over TLS, port 5061; DTLS over UDP): the messages are encrypted; counted as ``tls``.
"""

from __future__ import annotations

import dataclasses

import math
import re
from dataclasses import dataclass, field

__all__ = [
    "COMPACT_HEADERS",
    "SipMessage",
    "looks_like_sip",
    "parse_sip",
    "unreadable",
    "unreadable_notes",
    "uri_user",
]

#: Compact header forms (RFC 3261 §7.3.3 and later extensions) -> canonical lower-case name.
COMPACT_HEADERS: dict[str, str] = {
    "i": "call-id",
    "v": "via",
    "f": "from",
    "t": "to",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "e": "content-encoding",
    "k": "supported",
    "s": "subject",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
    "n": "identity-info",
}

_TOKEN = rb"[A-Za-z0-9\-.!%*_+`'~]+"
_REQUEST_LINE = re.compile(rb"^(" + _TOKEN + rb") +(\S+) +(SIP/\d+\.\d+) *$")
_STATUS_LINE = re.compile(rb"^(SIP/\d+\.\d+) +(\d{3})(?: +(.*))?$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_LEADING_INT = re.compile(r"^\s*(\d+)")
_LEADING_NUMBER = re.compile(r"^\s*(\d+(?:\.\d*)?)")

#: Upper bound on the size of a message we try to parse (a datagram cannot exceed 64 KiB).
MAX_MESSAGE = 1 << 20


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One parsed SIP message. Header names are canonical lower-case (compact forms expanded)."""

    kind: str  # "request" or "response"
    method: str  # request method, or the CSeq method of a response
    status: int  # status code, 0 for requests
    reason: str
    request_uri: str  # "" for responses
    call_id: str
    cseq: int
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    body: bytes = field(default=b"", repr=False)

    # -- generic header access -------------------------------------------------------------
    def header(self, name: str) -> str | None:
        """First value of header ``name`` (any case, compact form accepted), or ``None``."""
        key = _canonical(name)
        for hname, value in self.headers:
            if hname == key:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        """All values of header ``name``, comma-joined lists split into single values."""
        key = _canonical(name)
        out: list[str] = []
        for hname, value in self.headers:
            if hname == key:
                out.extend(v for v in _split_list(value) if v)
        return out

    # -- SIP semantics ---------------------------------------------------------------------
    @property
    def branch(self) -> str:
        """``branch`` parameter of the top Via, ``""`` if absent."""
        vias = self.header_values("via")
        if not vias:
            return ""
        return _params(vias[0]).get("branch", "") or ""

    @property
    def to_uri(self) -> str:
        value = self.header("to")
        return _name_addr_uri(value) if value is not None else ""

    @property
    def from_uri(self) -> str:
        value = self.header("from")
        return _name_addr_uri(value) if value is not None else ""

    @property
    def to_user(self) -> str:
        return uri_user(self.to_uri)

    @property
    def from_user(self) -> str:
        return uri_user(self.from_uri)

    @property
    def request_user(self) -> str:
        return uri_user(self.request_uri)

    @property
    def to_tag(self) -> str:
        value = self.header("to")
        return _header_params(value).get("tag", "") or "" if value is not None else ""

    @property
    def from_tag(self) -> str:
        value = self.header("from")
        return _header_params(value).get("tag", "") or "" if value is not None else ""

    @property
    def expires_header(self) -> float:
        """Value of the ``Expires`` header in seconds, NaN if absent or unparsable."""
        return _number(self.header("expires"))

    @property
    def contact_expires(self) -> float:
        """``expires=`` parameter of the first Contact carrying one, NaN if none."""
        for contact in self.header_values("contact"):
            value = _header_params(contact).get("expires")
            if value is not None:
                number = _number(value)
                if not math.isnan(number):
                    return number
        return math.nan

    @property
    def expires(self) -> float:
        """Granted/requested lifetime: Contact ``expires=`` if present, else ``Expires``."""
        value = self.contact_expires
        return value if not math.isnan(value) else self.expires_header

    @property
    def retry_after(self) -> float:
        """``Retry-After`` delay in seconds (comment and parameters ignored), NaN if absent."""
        return _number(self.header("retry-after"))

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        if value is None:
            return None
        match = _LEADING_INT.match(value)
        return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------
def looks_like_sip(data: bytes) -> bool:
    """Cheap test: does the first line of ``data`` look like a SIP start line?"""
    end = data.find(b"\n", 0, 2048)
    line = (data[:end] if end >= 0 else data[:2048]).rstrip(b"\r")
    return line.startswith(b"SIP/2.0 ") or line.endswith(b" SIP/2.0")


#: TLS record content types (change_cipher_spec, alert, handshake, application_data, heartbeat)
_TLS_TYPES = frozenset({20, 21, 22, 23, 24})
#: the port of SIP over TLS (RFC 3261 §26.2)
SIPS_PORT = 5061


def unreadable(data: bytes, ports: tuple[int, ...] = ()) -> str | None:
    """``"hep"`` or ``"tls"`` when ``data`` (a datagram, or the first bytes of a TCP direction) is SIP
    that simsip cannot read — HEP-encapsulated or encrypted — else ``None``.

    HEP: the ``HEP3`` chunk header (HEPv3, RFC-less but the sipcapture specification), or HEPv1/v2's
    version byte and header length on port 9060. TLS: a TLS record header (content type 20–24,
    version 3.x) or a DTLS one (version 254.x); or, on port 5061, any payload that is not text."""
    if len(data) >= 4 and data[:4] in (b"HEP3", b"EEP1"):
        return "hep"
    if 9060 in ports and len(data) >= 2 and data[0] in (1, 2) and data[1] in (16, 28, 40, 52):
        return "hep"
    if len(data) >= 5 and data[0] in _TLS_TYPES and (data[1] == 3 and data[2] <= 4 or data[1] == 254):
        return "tls"
    if SIPS_PORT in ports and data and not looks_like_sip(data) and any(b < 9 or 13 < b < 32 or b > 126 for b in data[:16]):
        return "tls"
    return None


def unreadable_notes(skipped: dict[str, int]) -> list[str]:
    """What a user should know about the unreadable SIP counted in ``skipped`` (``hep``, ``tls``)."""
    out = []
    if skipped.get("hep"):
        out.append(f"{skipped['hep']} packet(s) are HEP-encapsulated (a HOMER/sipcapture feed): simsip reads plain "
                   "SIP only and skipped them; export the calls from HOMER as pcap, or capture on the SIP "
                   "interface itself (tcpdump -i IFACE port 5060)")
    if skipped.get("tls"):
        out.append(f"{skipped['tls']} packet(s) are TLS/DTLS-encrypted SIP (port 5061): simsip cannot read "
                   "encrypted SIP and skipped them; capture where SIP is in clear text (behind the TLS "
                   "terminator), or decrypt with the key log first (tshark -o tls.keylog_file:KEYS ... "
                   "and export the decrypted SIP)")
    return out


def datagram_sip(data: bytes, skipped: dict[str, int], ports: tuple[int, ...] = ()) -> SipMessage | None:
    """A UDP datagram's SIP message, or None with the reason counted in ``skipped``
    (``not_sip``: no SIP start line; ``bad_sip``: a start line but no usable message; ``hep`` /
    ``tls``: SIP that cannot be read, see :func:`unreadable`)."""
    why = unreadable(data, ports)  # first: a HEP packet's first line may end with its SIP's " SIP/2.0"
    if why is None and not looks_like_sip(data):
        why = "not_sip"
    if why is not None:
        skipped[why] = skipped.get(why, 0) + 1
        return None
    msg = parse_sip(data)
    if msg is None:
        skipped["bad_sip"] = skipped.get("bad_sip", 0) + 1
    return msg


def parse_sip(data: bytes) -> SipMessage | None:
    """Parse one SIP message; ``None`` if ``data`` is not a usable SIP message. Never raises."""
    try:
        return _parse(data)
    except Exception:  # noqa: BLE001 - the contract is "never raises on garbage"
        return None


def _parse(data: bytes) -> SipMessage | None:
    if not data or len(data) > MAX_MESSAGE:
        return None
    data = data.lstrip(b"\r\n")
    head, body = _split_head(data)
    lines = head.split(b"\n")
    start = lines[0].rstrip(b"\r")

    kind: str
    method = ""
    status = 0
    reason = ""
    request_uri = ""
    match = _STATUS_LINE.match(start)
    if match:
        kind = "response"
        status = int(match.group(2))
        reason = (match.group(3) or b"").decode("latin-1").strip()
        if not 100 <= status <= 699:
            return None
    else:
        match = _REQUEST_LINE.match(start)
        if not match:
            return None
        kind = "request"
        method = match.group(1).decode("ascii").upper()
        request_uri = match.group(2).decode("latin-1")

    headers = _parse_headers(lines[1:])
    if headers is None:
        return None

    call_id = ""
    cseq_text: str | None = None
    for name, value in headers:
        if name == "call-id" and not call_id:
            call_id = value.strip()
        elif name == "cseq" and cseq_text is None:
            cseq_text = value
    if not call_id or cseq_text is None:
        return None
    parts = cseq_text.split()
    if len(parts) != 2 or not parts[0].isdigit() or not re.fullmatch(_TOKEN, parts[1].encode()):
        return None
    cseq = int(parts[0])
    if cseq >= 2**31:
        return None
    cseq_method = parts[1].upper()
    if kind == "response":
        method = cseq_method
    elif cseq_method != method and method != "ACK" and method != "CANCEL":
        # RFC 3261 §8.1.1.5: the CSeq method must match the request method.
        return None

    msg = SipMessage(
        kind=kind,
        method=method,
        status=status,
        reason=reason,
        request_uri=request_uri,
        call_id=call_id,
        cseq=cseq,
        headers=tuple(headers),
        body=body,
    )
    length = msg.content_length
    if length is not None and length < len(body):
        msg = dataclasses.replace(msg, body=body[:length])
    return msg


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split header block and body at the first empty line (CRLF or bare LF tolerated)."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return data[:crlf], data[crlf + 4 :]
    if lf >= 0:
        return data[:lf], data[lf + 2 :]
    return data, b""


def _parse_headers(raw_lines: list[bytes]) -> list[tuple[str, str]] | None:
    headers: list[tuple[str, str]] = []
    for raw in raw_lines:
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line:
            continue
        if line[0] in " \t":  # folded continuation of the previous header
            if not headers:
                return None
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or not _HEADER_NAME.match(name):
            return None
        headers.append((_canonical(name), value.strip()))
    return headers


def _canonical(name: str) -> str:
    lower = name.strip().lower()
    return COMPACT_HEADERS.get(lower, lower)


def _split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and ``<...>``."""
    if '"' not in value and "<" not in value:  # fast path (Via, CSeq, ...): nothing can hide a comma
        return [item.strip() for item in value.split(",")]
    items: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    escaped = False
    for ch in value:
        if quoted:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    return items


def _params(text: str) -> dict[str, str]:
    """``;name=value`` parameters of ``text`` (everything after the first ``;``)."""
    out: dict[str, str] = {}
    for chunk in text.split(";")[1:]:
        name, _, value = chunk.partition("=")
        name = name.strip().lower()
        if name and name not in out:
            out[name] = value.strip().strip('"')
    return out


def _split_name_addr(value: str) -> tuple[str, str]:
    """Split a To/From/Contact value into (URI, header-parameter text).

    ``"Display <x>" <sip:u@h;uri-param>;tag=1`` -> (``sip:u@h;uri-param``, ``;tag=1``); for a bare
    addr-spec every ``;`` parameter belongs to the header (RFC 3261 §20.10).
    """
    text = value.strip()
    if text.startswith('"'):  # skip a quoted display name, which may contain '<' or '>'
        j = 1
        while j < len(text) and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        text = text[j + 1 :]
    lt = text.find("<")
    if lt >= 0:
        gt = text.find(">", lt + 1)
        if gt < 0:
            return text[lt + 1 :].strip(), ""
        return text[lt + 1 : gt].strip(), text[gt + 1 :]
    uri, sep, params = text.partition(";")
    return uri.strip(), sep + params


def _header_params(value: str) -> dict[str, str]:
    """Header parameters of a name-addr/addr-spec value (not the URI's own parameters)."""
    return _params(_split_name_addr(value)[1])


def _name_addr_uri(value: str) -> str:
    """The URI of a ``To``/``From``/``Contact`` value."""
    return _split_name_addr(value)[0]


def uri_user(uri: str) -> str:
    """User part of a SIP/SIPS/TEL URI (``sip:alice:pw@host;p`` -> ``alice``); ``""`` if none."""
    uri = uri.strip()
    scheme, sep, rest = uri.partition(":")
    if not sep:
        return ""
    scheme = scheme.lower()
    if scheme == "tel":
        return rest.split(";", 1)[0]
    if scheme not in ("sip", "sips"):
        return ""
    at = rest.find("@")
    if at < 0:
        return ""
    user = rest[:at]
    return user.split(":", 1)[0]


def _number(value: str | None) -> float:
    if value is None:
        return math.nan
    match = _LEADING_NUMBER.match(value)
    return float(match.group(1)) if match else math.nan
