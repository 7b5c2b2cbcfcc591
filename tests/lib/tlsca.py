"""tlsca.py - a throw-away certificate authority made with the openssl command,
for tests that run TLS: a CA, server certificates for 127.0.0.1/localhost (or
for a wrong host name), client certificates (mTLS), an expired one, and a
second CA that signed none of them (an untrusted CA, as a client sees it).
EC P-256 keys: made in milliseconds. Everything is PEM, keys unencrypted
PKCS#8, which both OpenSSL (librdkafka) and Java (Kafka's PEM stores) read.

  ca = CA(directory, name="wb-test-ca")   the key and self-signed certificate
    .cert                                 path of the CA certificate (PEM)
    .issue(name, cn, hosts=(), client=False, days=2, expired=False) -> Issued
        hosts   subjectAltName entries: IP addresses as IP, names as DNS
        client  extendedKeyUsage clientAuth (else serverAuth)
        expired valid from 2020-01-01 to 2020-01-02
  Issued.cert, .key   PEM files; .bundle: key then certificate (Kafka's PEM
                      keystore file); .cn (the subject is CN=<cn> alone)
"""
import ipaddress
import pathlib
import subprocess


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))}: {r.stderr}")
    return r.stdout


class Issued:
    def __init__(self, cn, cert, key, bundle):
        self.cn, self.cert, self.key, self.bundle = cn, cert, key, bundle


class CA:
    def __init__(self, directory, name="wb-test-ca"):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = self.dir / f"{name}.key"
        self.cert = self.dir / f"{name}.pem"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
                 "-subj", f"/O=webhook-bridge tests/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        # `openssl ca` (for set start and end dates) wants its database files
        self._db = self.dir / f"{name}.db"
        self._db.mkdir(exist_ok=True)
        (self._db / "index.txt").write_text("")
        (self._db / "serial").write_text("1000\n")

    def issue(self, name, cn, hosts=(), client=False, days=2, expired=False):
        key, csr = self.dir / f"{name}.key", self.dir / f"{name}.csr"
        cert, bundle = self.dir / f"{name}.pem", self.dir / f"{name}.bundle.pem"
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")
        sans = ",".join(("IP:" if _is_ip(h) else "DNS:") + h for h in hosts)
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            "[v3]\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n"
            + (f"subjectAltName={sans}\n" if sans else ""))
        conf = self.dir / f"{name}.ca.cnf"
        conf.write_text(
            "[ca]\ndefault_ca=d\n[d]\n"
            f"database={self._db / 'index.txt'}\nserial={self._db / 'serial'}\n"
            f"new_certs_dir={self._db}\ndefault_md=sha256\npolicy=p\n"
            "unique_subject=no\ncopy_extensions=none\n[p]\ncommonName=supplied\n")
        dates = (["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] if expired
                 else ["-days", str(days)])
        _openssl("ca", "-batch", "-notext", "-config", conf, "-cert", self.cert, "-keyfile",
                 self.key, "-in", csr, "-out", cert, "-extfile", ext, "-extensions", "v3", *dates)
        bundle.write_text(key.read_text() + cert.read_text())
        return Issued(cn, cert, key, bundle)


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
