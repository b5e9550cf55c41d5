"""A real SMTP server for tests (aiosmtpd): STARTTLS required, AUTH PLAIN/LOGIN required,
one file per accepted message in the given directory. Prints `ready` once it listens.

usage: smtp_server.py PORT CERT KEY USER PASSWORD MAILDIR
"""
import ssl
import sys
import threading
import pathlib

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, user, password, maildir = sys.argv[1:7]
maildir = pathlib.Path(maildir)


class Handler:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Handler.count += 1
        tmp = maildir / f".{Handler.count}.tmp"
        tmp.write_bytes(
            f"X-Envelope-From: {envelope.mail_from}\r\n".encode()
            + f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
            + f"X-Authenticated-As: {session.auth_data.login.decode() if session.auth_data else ''}\r\n".encode()
            + envelope.original_content
        )
        tmp.rename(maildir / f"{Handler.count}.eml")
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    # handled=False: the server answers 535 itself (True would leave the client waiting).
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=int(port),
    tls_context=context,
    require_starttls=True,
    authenticator=authenticator,
    auth_required=True,
    ready_timeout=10,
)
controller.start()
print("ready", flush=True)
threading.Event().wait()
