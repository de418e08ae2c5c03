"""``bastion certs create DIR``: a local CA and short-lived certificates for FIX over TLS."""

from __future__ import annotations

import argparse
from pathlib import Path

from bastion.cli.common import EXIT_OK, Commands, Formatter, usage, wrap

_EPILOG = """\
creates (directory 0700, keys 0600; the CA's key is never written):
  DIR/ca.pem                 the CA certificate both ends trust
  DIR/venue.pem, venue.key   the venue's certificate (SAN: each --host)
  DIR/NAME.pem, NAME.key     a client certificate per --client (CN=NAME), for mutual TLS

examples:
  bastion certs create mydesk/tls
  bastion certs create tls --host 10.0.0.5 --host venue.internal --client node --days 7
"""


def add_certs_commands(commands: Commands, formatter: Formatter) -> None:
    certs = commands.add_parser(
        "certs",
        help="certificates for FIX over TLS: a local CA, the venue's and the nodes'",
        description="bastion certs: certificates for FIX over TLS.",
        formatter_class=formatter,
    )
    certs.set_defaults(handler=lambda _args: usage(certs))
    sub = certs.add_subparsers(dest="certs_command", metavar="COMMAND", title="commands")
    create = sub.add_parser(
        "create",
        help="write a new local CA, a venue certificate and client certificates",
        description=wrap(
            "Write a new local CA, the venue's certificate and one client certificate "
            "per --client, EC P-256, valid --days. Run again to renew: the old CA is "
            "replaced, so renew both ends together."
        ),
        epilog=_EPILOG,
        formatter_class=formatter,
    )
    create.add_argument("dir", metavar="DIR", help="directory for the files")
    create.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="a name or address of the venue (repeatable; default 127.0.0.1, ::1, localhost)",
    )
    create.add_argument(
        "--client",
        action="append",
        metavar="NAME",
        help="a client certificate with CN=NAME (repeatable; default: node)",
    )
    create.add_argument("--days", type=int, default=30, help="validity in days (default 30)")
    create.set_defaults(handler=cmd_certs_create)


def cmd_certs_create(args: argparse.Namespace) -> int:
    from bastion.certs import DEFAULT_HOSTS, create_certs

    files = create_certs(
        Path(args.dir),
        hosts=args.host or DEFAULT_HOSTS,
        clients=args.client or ("node",),
        days=args.days,
    )
    print_cert_files(files)
    return EXIT_OK


def print_cert_files(files: object) -> None:
    from bastion.certs import CertFiles
    from bastion.fix.tls import Fingerprints

    assert isinstance(files, CertFiles)
    print(f"  {files.ca}  CA certificate (ca_file, client_ca_file)")
    venue = Fingerprints.of_pem_file(files.venue_cert)
    print(f"  {files.venue_cert}, {files.venue_key.name}  the venue (cert_file, key_file)")
    print(f'    pin_spki_sha256 = "{venue.spki_sha256}"')
    for name, (cert, key) in files.clients.items():
        client = Fingerprints.of_pem_file(cert)
        print(f"  {cert}, {key.name}  client CN={name} (client_cert, client_key)")
        print(f'    client_cert_sha256 = "{client.cert_sha256}"')
