"""Malformed and tricky SIP messages in the spirit of RFC 4475 (torture tests) and RFC 5118
(IPv6 torture tests), written here from the RFCs' descriptions of each case.

Each case is a template: ``{branch}`` and ``{callid}`` are made unique per sending, ``{local}``
is the sender's host:port and ``{edge}`` the edge's. A robust edge answers each with a 4xx
(or 2xx where the message is merely unusual) or drops it, never a 5xx, and keeps running.
"""

from __future__ import annotations

CASES: dict[str, bytes] = {
    # 3.1.2.4 (unknown scheme): a Request-URI with a scheme nobody knows.
    "unknown-scheme": (
        b"OPTIONS nobodyknowsthisscheme:totallyopaquecontent SIP/2.0\r\n"
        b"To: sip:j.user@example.com\r\n"
        b"From: sip:caller@example.net;tag=384\r\n"
        b"Max-Forwards: 3\r\nCall-ID: {callid}\r\nCSeq: 3923239 OPTIONS\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.1.2 (escaped characters): a URI user part full of %-escapes, with an escaped "@".
    "escaped-uri": (
        b"INVITE sip:sips%3Auser%40example.com@{edge} SIP/2.0\r\n"
        b"To: sip:%61lice@{edge}\r\n"
        b"From: <sip:I%20have%20spaces@example.net>;tag=938\r\n"
        b"Max-Forwards: 87\r\nCall-ID: {callid}\r\nCSeq: 7 INVITE\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"Contact: <sip:caller@{local}>\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.7 (Content-Length larger than the message): the body is far shorter.
    "content-length-too-large": (
        b"INVITE sip:4008001234@{edge} SIP/2.0\r\n"
        b"Max-Forwards: 80\r\nTo: sip:4008001234@{edge}\r\n"
        b"From: sip:caller@example.net;tag=93942939o2\r\nContact: <sip:caller@{local}>\r\n"
        b"Call-ID: {callid}\r\nCSeq: 193942 INVITE\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"Content-Type: application/sdp\r\nContent-Length: 9999\r\n\r\n"
        b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.155\r\ns=-\r\n"
    ),
    # 3.1.2.8 (negative Content-Length).
    "negative-content-length": (
        b"INVITE sip:4008001234@{edge} SIP/2.0\r\n"
        b"Max-Forwards: 70\r\nTo: sip:4008001234@{edge}\r\n"
        b"From: sip:caller@example.net;tag=32394234\r\nContact: <sip:caller@{local}>\r\n"
        b"Call-ID: {callid}\r\nCSeq: 0 INVITE\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"Content-Type: application/sdp\r\nContent-Length: -999\r\n\r\n"
        b"v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.155\r\ns=-\r\n"
    ),
    # 3.1.2.11 (multiple values in single-value headers): two Call-IDs, Froms, Tos, CSeqs.
    "multiple-single-value-headers": (
        b"INVITE sip:4008001234@{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nMax-Forwards: 70\r\n"
        b"From: sip:caller@example.net;tag=3413415\r\nFrom: sip:caller@example.com;tag=2983\r\n"
        b"To: sip:4008001234@{edge}\r\nTo: sip:1001@{edge}\r\n"
        b"Call-ID: {callid}\r\nCall-ID: second-{callid}\r\n"
        b"CSeq: 2 INVITE\r\nCSeq: 3 INVITE\r\n"
        b"Contact: <sip:caller@{local}>\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.14-ish (missing required header): no Call-ID at all.
    "missing-call-id": (
        b"INVITE sip:4008001234@{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nMax-Forwards: 70\r\n"
        b"From: sip:caller@example.net;tag=1\r\nTo: sip:4008001234@{edge}\r\n"
        b"CSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.5 (overlarge scalar fields): CSeq, Max-Forwards and Expires far past 2**32.
    "overlarge-scalars": (
        b"REGISTER sip:{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"From: sip:1001@{edge};tag=98asjd8\r\nTo: sip:1001@{edge}\r\n"
        b"Max-Forwards: 255\r\nCall-ID: {callid}\r\nCSeq: 36893488147419103232 REGISTER\r\n"
        b"Contact: <sip:1001@{local}>;expires=280297596632815\r\nExpires: 1073741824000000\r\n"
        b"Content-Length: 0\r\n\r\n"
    ),
    # 3.1.2.10 (unterminated quoted string in a display name).
    "unterminated-quote": (
        b"INVITE sip:4008001234@{edge} SIP/2.0\r\n"
        b"To: sip:4008001234@{edge}\r\n"
        b'From: "Bell, Alexander <sip:a.g.bell@example.com>;tag=43\r\n'
        b"Max-Forwards: 70\r\nCall-ID: {callid}\r\nCSeq: 1 INVITE\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"Contact: <sip:caller@{local}>\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.12 (request method and CSeq method disagree).
    "cseq-method-mismatch": (
        b"OPTIONS sip:{edge} SIP/2.0\r\n"
        b"To: sip:{edge}\r\nFrom: sip:caller@example.net;tag=34525\r\n"
        b"Max-Forwards: 6\r\nCall-ID: {callid}\r\nCSeq: 8 INVITE\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.13 (unknown method, CSeq for another unknown method).
    "unknown-method-mismatch": (
        b"NEWMETHOD sip:{edge} SIP/2.0\r\n"
        b"To: sip:{edge}\r\nFrom: sip:caller@example.net;tag=34525\r\n"
        b"Max-Forwards: 6\r\nCall-ID: {callid}\r\nCSeq: 8 OTHERMETHOD\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.15 (unknown protocol version).
    "unknown-version": (
        b"OPTIONS sip:{edge} SIP/7.0\r\n"
        b"Via: SIP/7.0/UDP {local};branch={branch}\r\nTo: sip:{edge}\r\n"
        b"From: sip:caller@example.net;tag=3ab3\r\nCall-ID: {callid}\r\n"
        b"CSeq: 3 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.2 (Request-URI enclosed in angle brackets).
    "bracketed-request-uri": (
        b"INVITE <sip:4008001234@{edge}> SIP/2.0\r\n"
        b"To: sip:4008001234@{edge}\r\nFrom: sip:caller@example.net;tag=39291\r\n"
        b"Max-Forwards: 23\r\nCall-ID: {callid}\r\nCSeq: 1 INVITE\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"Contact: <sip:caller@{local}>\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.1 (extraneous header separators and a header with no colon).
    "garbage-header-lines": (
        b"OPTIONS sip:{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch};;,;,,\r\n"
        b"To: sip:{edge}\r\nFrom: sip:caller@example.net;tag=1;;\r\n"
        b"This line has no colon at all\r\n"
        b"Call-ID: {callid}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.2.9 (request-line with spaces in the URI).
    "spaces-in-request-uri": (
        b"OPTIONS sip:user name@{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nTo: sip:{edge}\r\n"
        b"From: sip:caller@example.net;tag=2\r\nCall-ID: {callid}\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ),
    # A NUL byte inside a header value.
    "nul-in-header": (
        b"OPTIONS sip:{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nTo: sip:{edge}\r\n"
        b"From: sip:caller\x00@example.net;tag=3\r\nCall-ID: {callid}\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ),
    # 3.1.1.x (a long message): a 20 000-character header value.
    "huge-header": (
        b"OPTIONS sip:{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nTo: sip:{edge}\r\n"
        b"From: sip:caller@example.net;tag=4\r\nCall-ID: {callid}\r\n"
        b"X-Padding: " + b"x" * 20000 + b"\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ),
    # A response nobody asked for, with a status code far out of range (3.1.2.18-ish).
    "stray-response-bad-code": (
        b"SIP/2.0 4294967301 better not break the receiver\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"Call-ID: {callid}\r\nCSeq: 353494 INVITE\r\n"
        b"From: <sip:caller@example.net>;tag=39ansfi3\r\n"
        b"To: <sip:user@example.edu>;tag=8321234356\r\n"
        b"Content-Length: 0\r\n\r\n"
    ),
    # RFC 5118 4.3 (unbracketed IPv6 reference with a port) in the Request-URI.
    "ipv6-unbracketed": (
        b"OPTIONS sip:user@2001:db8::10:5070 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\nTo: sip:user@[2001:db8::10]\r\n"
        b"From: sip:caller@example.net;tag=5\r\nCall-ID: {callid}\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ),
    # RFC 5118 4.4 (port inside the brackets) and a malformed "::::" address in Contact.
    "ipv6-port-in-brackets": (
        b"REGISTER sip:[2001:db8::10:5070] SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP {local};branch={branch}\r\n"
        b"From: sip:1001@{edge};tag=6\r\nTo: sip:1001@{edge}\r\n"
        b"Call-ID: {callid}\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n"
        b"Contact: <sip:1001@[2001:db8:::192.0.2.1]>\r\nContent-Length: 0\r\n\r\n"
    ),
    # RFC 5118 4.5 (IPv6 in Via received/maddr parameters, bracket mismatch).
    "ipv6-bad-via": (
        b"OPTIONS sip:{edge} SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP [2001:db8::9:1;branch={branch};received=[2001:db8::9:255\r\n"
        b"To: sip:{edge}\r\nFrom: sip:caller@example.net;tag=7\r\nCall-ID: {callid}\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ),
    # Not SIP at all.
    "binary-garbage": bytes(range(256)) * 4,
}
