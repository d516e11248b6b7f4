"""Test TLS material made with the openssl CLI.

A self-signed CA and a server certificate it signs for 127.0.0.1 and localhost, to test validate_certs both ways."""

import os
import subprocess
import tempfile

# Extensions are spelled out (not taken from the system openssl.cnf) so that strict verifiers,
# such as Python 3.13's default VERIFY_X509_STRICT, accept the chain.
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = imgserver test
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""
NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc"]


def make_ca_and_cert(directory):
    """Return {ca, cert, key} paths in directory, creating them unless all already exist."""
    os.makedirs(directory, exist_ok=True)
    paths = {name: os.path.join(directory, f"{name}.pem") for name in ("ca", "cert", "key")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    # Built in a scratch directory and moved into place, so a half-made set is never taken as done.
    with tempfile.TemporaryDirectory(dir=directory) as work:
        config, ca_key, csr = (os.path.join(work, n) for n in ("openssl.cnf", "ca.key", "server.csr"))
        made = {name: os.path.join(work, os.path.basename(p)) for name, p in paths.items()}
        with open(config, "w", encoding="utf-8") as f:
            f.write(OPENSSL_CONFIG)
        for cmd in (
            ["req", "-x509", "-config", config, "-extensions", "ca", *NEW_KEY, "-keyout", ca_key,
             "-out", made["ca"], "-days", "3650", "-subj", "/CN=imgserver test CA"],
            ["req", "-new", "-config", config, *NEW_KEY, "-keyout", made["key"], "-out", csr, "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", csr, "-CA", made["ca"], "-CAkey", ca_key, "-set_serial", f"0x{os.urandom(8).hex()}",
             "-days", "825", "-extfile", config, "-extensions", "server", "-out", made["cert"]],
        ):
            subprocess.run(["openssl", *cmd], check=True, capture_output=True)
        for name in ("key", "ca", "cert"):
            os.replace(made[name], paths[name])
    return paths
