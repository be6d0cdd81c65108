"""A real SMTP server (aiosmtpd) that misbehaves on request, for brigade mail's tests.

Run with Debian's python3-aiosmtpd: /usr/bin/python3 smtp_sink.py --out FILE [options]
It binds 127.0.0.1 (port 0 = a free one), prints "PORT <n>" on stdout, and serves
until killed. Each accepted message is appended to --out as one JSON line
(mail_from, rcpt_tos, data, conn) and flushed *before* the 250 reply, so what the
client saw accepted is in the file. Each message is parsed with Python's own
email package: its headers, and each leaf part's type, filename and decoded
content (hex, and as text).
"""
import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import socket
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def addr_count(values):
    out = {}
    for v in values:
        addr, _, n = v.rpartition(":")
        out[addr.lower()] = int(n)
    return out


p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--out", required=True)
p.add_argument("--temp-rcpt", action="append", default=[], help="ADDR:N  451 at RCPT for the first N attempts")
p.add_argument("--temp-data", action="append", default=[], help="ADDR:N  451 after the message for the first N attempts")
p.add_argument("--greylist", action="append", default=[], help="ADDR:S  451 'try again in S seconds' once")
p.add_argument("--perm", action="append", default=[], help="ADDR  550 at RCPT")
p.add_argument("--drop-after", type=int, default=0, help="close a connection abruptly at the MAIL after K messages")
p.add_argument("--idle-timeout", type=float, default=300.0, help="close connections idle this long (421)")
p.add_argument("--delay-ms", type=float, default=0.0, help="wait this long before accepting each message")
p.add_argument("--tls-cert")
p.add_argument("--tls-key")
p.add_argument("--count-only", action="store_true", help="keep a count, write it to --out at SIGTERM")
p.add_argument("--auth", help="USER:PASSWORD  require AUTH (PLAIN or LOGIN) with these credentials")
p.add_argument("--processes", type=int, default=1, help="serve from N processes sharing the port (SO_REUSEPORT)")
a = p.parse_args()

temp_rcpt = addr_count(a.temp_rcpt)
temp_data = addr_count(a.temp_data)
greylist = addr_count(a.greylist)
perm = {x.lower() for x in a.perm}
seen_rcpt = {}
seen_data = {}
conn_ids = itertools.count(1)
count = 0


class Handler:
    def __init__(self, out):
        self.out = out

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if not hasattr(session, "conn_id"):
            session.conn_id = "%d-%d" % (os.getpid(), next(conn_ids))
            session.delivered = 0
        if a.drop_after and session.delivered >= a.drop_after:
            server.transport.abort()
            return "421 4.3.2 closing (no reply should reach the client)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        low = address.lower()
        if low in perm:
            return "550 5.1.1 no such user here"
        n = seen_rcpt.get(low, 0)
        seen_rcpt[low] = n + 1
        if n < temp_rcpt.get(low, 0):
            return "451 4.3.0 mailbox busy, come back later"
        if low in greylist and n == 0:
            return "451 4.7.1 Greylisted, try again in %d seconds" % greylist[low]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        global count
        low = envelope.rcpt_tos[0].lower() if envelope.rcpt_tos else ""
        n = seen_data.get(low, 0)
        seen_data[low] = n + 1
        if n < temp_data.get(low, 0):
            return "451 4.3.0 temporary failure after the message"
        if a.delay_ms:
            await asyncio.sleep(a.delay_ms / 1000.0)
        count += 1
        session.delivered += 1
        if not a.count_only:
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            parts = []
            for part in msg.walk():
                if part.is_multipart():
                    continue
                payload = part.get_payload(decode=True) or b""
                parts.append({
                    "type": part.get_content_type(),
                    "filename": part.get_filename(),
                    "hex": payload.hex(),
                    "text": payload.decode("utf-8", "replace"),
                })
            rec = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "headers": {k.lower(): str(v) for k, v in msg.items()},
                "parts": parts,
                "conn": session.conn_id,
            }
            self.out.write(json.dumps(rec) + "\n")
            self.out.flush()
        return "250 2.0.0 OK"


def serve(sock):
    out = open(a.out, "a")
    handler = Handler(out)
    kw = {"timeout": a.idle_timeout, "decode_data": False, "enable_SMTPUTF8": True}
    if a.auth:
        user, _, password = a.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok)

        kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    if a.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        kw.update(tls_context=ctx, require_starttls=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    srv = loop.run_until_complete(loop.create_server(lambda: SMTP(handler, **kw), sock=sock))

    def stop():
        if a.count_only:
            with open(a.out + ".%d" % os.getpid(), "w") as f:
                f.write("%d\n" % count)
        loop.stop()

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.run_forever()
    srv.close()


def bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if a.processes > 1:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(512)
    return s


first = bind(a.port)
port = first.getsockname()[1]
children = []
for _ in range(a.processes - 1):
    pid = os.fork()
    if pid == 0:
        serve(bind(port))
        os._exit(0)
    children.append(pid)
print("PORT %d" % port, flush=True)
try:
    serve(first)
finally:
    for c in children:
        try:
            os.kill(c, signal.SIGTERM)
            os.waitpid(c, 0)
        except OSError:
            pass
