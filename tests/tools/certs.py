#!/usr/bin/env python3
"""Test certificates for the controller tests: a CA, a server certificate for the
test controller's address, a device (client) certificate, and the misfits the tests
need (another CA, an expired server certificate, a device certificate from the other
CA). Usage: certs.py DIR SERVER_IP"""
import datetime
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

out, server_ip = sys.argv[1], sys.argv[2]
now = datetime.datetime.now(datetime.timezone.utc)
day = datetime.timedelta(days=1)


def key():
    return ec.generate_private_key(ec.SECP256R1())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def save(base, k, cert):
    with open(f"{out}/{base}.key", "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    with open(f"{out}/{base}.pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def ca(cn):
    k = key()
    c = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - day).not_valid_after(now + 30 * day)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                      content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False,
                                      encipher_only=False, decipher_only=False), critical=True)
         .sign(k, hashes.SHA256()))
    return k, c


def leaf(issuer_key, issuer, cn, server, before, after):
    k = key()
    b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer.subject)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(before).not_valid_after(after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]),
                            critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return k, b.sign(issuer_key, hashes.SHA256())


ca_key, ca_cert = ca("econet test CA")
save("ca", ca_key, ca_cert)
other_key, other_cert = ca("some other CA")
save("other-ca", other_key, other_cert)
save("server", *leaf(ca_key, ca_cert, "controller", True, now - day, now + 30 * day))
save("server-expired", *leaf(ca_key, ca_cert, "controller", True, now - 10 * day, now - day))
save("server-other-ca", *leaf(other_key, other_cert, "controller", True, now - day, now + 30 * day))
save("device", *leaf(ca_key, ca_cert, "device-42", False, now - day, now + 30 * day))
save("device-other-ca", *leaf(other_key, other_cert, "device-42", False, now - day, now + 30 * day))
