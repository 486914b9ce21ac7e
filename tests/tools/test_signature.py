"""abctl install under Secure Boot, without a VM: the new UKI's Authenticode
signature is checked against db and dbx from a stand-in efivarfs directory
(the same file format: 4 bytes of attributes, then the value), and a UKI
the firmware would refuse is refused before anything is written: each
refusal checks the message and that the disk image, the EFI variables and
the ESP are byte-for-byte unchanged.

Real parts: UKIs made by initramfs/mkuki and signed with sbsign (the
snakeoil key Debian's OVMF enrolls, and a stranger key made here), db and
dbx built with efitools (cert-to-efi-sig-list, hash-to-efi-sig-list: their
PE hashing is independent of ours) or, for the X509_SHA256 type efitools
1.9 cannot write, with python3-cryptography. Keys live in build/, never in
the tree. The same check inside QEMU with OVMF's real Secure Boot is
tests/e2e/test_install_signature.py."""

import hashlib
import os
import struct
import subprocess
import uuid
from pathlib import Path

import pytest
from test_hostile import E2E, TOP, Machine
from test_oci import make_layout

from cryptography import x509

SB_GUID = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
SNAKEOIL_PEM = Path("/usr/share/ovmf/PkKek-1-snakeoil.pem")
SNAKEOIL_NAME = "/C=US/ST=Colorado/L=Fort Collins/O=SnakeOil"
KEYS = TOP / "build" / "sbkeys"
X509_SHA256_GUID = uuid.UUID("3bd2a492-96c0-4079-b420-fcf98ef103ed")


@pytest.fixture(scope="session")
def keys():
    """The snakeoil key without its passphrase and a stranger's key pair, in build/sbkeys."""
    KEYS.mkdir(parents=True, exist_ok=True)
    # Made under a temporary name and renamed, the certificate last: tests
    # on other workers (pytest-xdist) may look for them at the same time.
    snake, stranger = KEYS / "snakeoil.key", KEYS / "stranger.key"
    tmp = f".tmp-{os.getpid()}"
    if not snake.exists():
        subprocess.run(["openssl", "rsa", "-in", "/usr/share/ovmf/PkKek-1-snakeoil.key", "-passin", "pass:snakeoil",
                        "-out", KEYS / f"snakeoil.key{tmp}"], check=True, capture_output=True)
        os.replace(KEYS / f"snakeoil.key{tmp}", snake)
    if not (KEYS / "stranger.pem").exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", KEYS / f"stranger.key{tmp}",
                        "-out", KEYS / f"stranger.pem{tmp}", "-subj", "/CN=abswitch test stranger", "-days", "3650"],
                       check=True, capture_output=True)
        os.replace(KEYS / f"stranger.key{tmp}", stranger)
        os.replace(KEYS / f"stranger.pem{tmp}", KEYS / "stranger.pem")
    return {"snakeoil": (snake, SNAKEOIL_PEM), "stranger": (stranger, KEYS / "stranger.pem")}


def sign(keys, who, uki, out):
    key, cert = keys[who]
    subprocess.run(["sbsign", "--key", key, "--cert", cert, "--output", out, uki], check=True, capture_output=True)
    return out


def esl_cert(tmp, pem):
    out = tmp / f"{pem.stem}.esl"
    subprocess.run(["cert-to-efi-sig-list", pem, out], check=True, capture_output=True)
    return out.read_bytes()


def aligned(m):
    """The B UKI padded with zeros to a multiple of 8 bytes. hash-to-efi-sig-list
    (like sbsign) hashes a file as if so padded, while the firmware (EDK2) hashes
    the file as it is: for a file of another length efitools' digest is not the
    one the firmware compares with db (abctl prints the firmware's)."""
    data = m.ukis["b-commit"].read_bytes()
    out = m.dir / "uki-b-commit-aligned.efi"
    out.write_bytes(data + bytes(-len(data) % 8))
    return out


def esl_hash(tmp, image):
    out = tmp / f"{image.stem}-hash.esl"
    subprocess.run(["hash-to-efi-sig-list", image, out], check=True, capture_output=True)
    return out.read_bytes()


X509_TBS_GUIDS = {"sha256": X509_SHA256_GUID, "sha384": uuid.UUID("7076876e-80c2-4ee6-aad2-28b349a6865b"),
                  "sha512": uuid.UUID("446dbf63-2502-4cda-bcfa-2465d2b0fe9d")}


def esl_cert_hash(pem, alg="sha256"):
    """EFI_CERT_X509_SHA256/384/512: the hash of the certificate's TBSCertificate (the bytes as
    encoded) and a revocation time (EFI_TIME)."""
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    data = uuid.UUID(int=0).bytes_le + hashlib.new(alg, cert.tbs_certificate_bytes).digest() + bytes(16)
    return X509_TBS_GUIDS[alg].bytes_le + struct.pack("<III", 28 + len(data), 0, len(data)) + data


class SecureBootMachine(Machine):
    def secure_boot(self, on=True, setup_mode=False, db=b"", dbx=None):
        self.set_var("SecureBoot", bytes([1 if on else 0]))
        self.set_var("SetupMode", bytes([1 if setup_mode else 0]))
        # db and dbx are NV|BS|RT|TIME_BASED_AUTHENTICATED_WRITE_ACCESS (0x27) in efivarfs.
        (self.efivars / f"db-{SB_GUID}").write_bytes(b"\x27\0\0\0" + db)
        if dbx is not None:
            (self.efivars / f"dbx-{SB_GUID}").write_bytes(b"\x27\0\0\0" + dbx)


@pytest.fixture
def m(tmp_path):
    return SecureBootMachine(tmp_path)


def refused(m, uki, *says):
    before = m.fingerprint()
    r = m.abctl("install", E2E / "slot-b-commit", uki)
    assert r.returncode == 1, r.stderr
    for s in says:
        assert s in r.stderr, r.stderr
    assert "Secure Boot is on and the firmware would refuse the UKI" in r.stderr, r.stderr
    assert "Nothing was changed" in r.stderr, r.stderr
    assert m.fingerprint() == before
    return r


def installed(m, r, uki):
    assert r.returncode == 0, r.stderr
    assert "slot B is now on trial" in r.stdout, r.stdout
    assert (m.esp / "EFI/abswitch/boot-b.efi").read_bytes() == Path(uki).read_bytes()


def test_unsigned_refused(m, tmp_path):
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM))
    uki = aligned(m)
    r = refused(m, uki, "it is not signed, and its SHA-256 digest", "is not in db",
                "mkuki --sign-key KEY --sign-cert CERT")
    # The digest named is the one efitools computes for the same file.
    assert esl_hash(tmp_path, uki)[-32:].hex() in r.stderr


def test_stranger_signed_refused(m, keys, tmp_path):
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM))
    uki = sign(keys, "stranger", m.ukis["b-commit"], tmp_path / "stranger.efi")
    refused(m, uki, 'signed by "CN=abswitch test stranger" (issued by "CN=abswitch test stranger")',
            "which chains to no certificate in db (1 entry)")


def test_signed_after_a_change_refused(m, keys, tmp_path):
    # A signed UKI changed afterwards (a byte of a section): the signature is not over it.
    uki = sign(keys, "snakeoil", m.ukis["b-commit"], tmp_path / "signed.efi")
    data = bytearray(uki.read_bytes())
    at = data.find(b"kernel placeholder")
    data[at] ^= 1
    uki.write_bytes(bytes(data))
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM))
    refused(m, uki, f'signature by "{SNAKEOIL_NAME}" (issued by "{SNAKEOIL_NAME}"), but not over this file')


def test_dbx_certificate_revoked(m, keys, tmp_path):
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM), dbx=esl_cert(tmp_path, SNAKEOIL_PEM))
    uki = sign(keys, "snakeoil", m.ukis["b-commit"], tmp_path / "signed.efi")
    refused(m, uki, f'signed by "{SNAKEOIL_NAME}"', "its chain holds a certificate revoked by dbx entry 0",
            "with a key that is not revoked")


@pytest.mark.parametrize("alg", ["sha256", "sha384", "sha512"])
def test_dbx_certificate_hash_revoked(m, keys, tmp_path, alg):
    # EDK2 looks for the TBS hash with each of the three (the SHA-384 and
    # SHA-512 entries were ignored before; checked to fail on the old code).
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM), dbx=esl_cert_hash(SNAKEOIL_PEM, alg))
    uki = sign(keys, "snakeoil", m.ukis["b-commit"], tmp_path / "signed.efi")
    refused(m, uki, "a certificate of that signature is revoked by dbx entry 0 (signature list 0, "
            f"X509_{alg.upper()}")


def test_certificate_table_without_pkcs7_refused(m, keys, tmp_path):
    # A certificate table whose one entry is not PKCS#7 (WIN_CERT_TYPE_X509):
    # EDK2 takes the image as signed, skips the entry, finds nothing that
    # verifies and refuses it, even with its digest in db (which allows
    # unsigned images only). The old code took it as unsigned and let db's
    # digest allow it (checked).
    data = bytearray(sign(keys, "snakeoil", m.ukis["b-commit"], tmp_path / "signed.efi").read_bytes())
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    magic = struct.unpack_from("<H", data, pe + 24)[0]
    security_dir = pe + 24 + (144 if magic == 0x20B else 128)
    cert_off, cert_size = struct.unpack_from("<II", data, security_dir)
    assert cert_size > 8 and struct.unpack_from("<H", data, cert_off + 6)[0] == 0x0002
    struct.pack_into("<H", data, cert_off + 6, 0x0001)
    uki = tmp_path / "x509-entry.efi"
    uki.write_bytes(bytes(data))
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM) + esl_hash(tmp_path, uki))
    refused(m, uki, "its certificate table holds no Authenticode (PKCS#7) signature")


def test_dbx_image_hash_revoked(m, keys, tmp_path):
    uki = sign(keys, "snakeoil", m.ukis["b-commit"], tmp_path / "signed.efi")
    # dbx: a stranger's certificate first, then this image's digest.
    dbx = esl_cert(tmp_path, keys["stranger"][1]) + esl_hash(tmp_path, uki)
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM), dbx=dbx)
    refused(m, uki, "this very image is revoked, its digest is dbx entry 1 (signature list 1, SHA256",
            f'signed by "{SNAKEOIL_NAME}"')


def test_unsigned_image_hash_revoked(m, tmp_path):
    # In db and in dbx: dbx wins.
    uki = aligned(m)
    h = esl_hash(tmp_path, uki)
    m.secure_boot(db=h, dbx=h)
    refused(m, uki, "(not signed): this very image is revoked")


def test_db_hash_allows_unsigned(m, tmp_path):
    uki = aligned(m)
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM) + esl_hash(tmp_path, uki))
    r = m.abctl("install", E2E / "slot-b-commit", uki)
    installed(m, r, uki)
    assert "the UKI of" in r.stderr and "is not signed; its digest is allowed by db entry 1" in r.stderr, r.stderr


def test_db_hash_allows_stranger_signed(m, keys, tmp_path):
    uki = sign(keys, "stranger", m.ukis["b-commit"], tmp_path / "stranger.efi")
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM) + esl_hash(tmp_path, uki), dbx=b"")
    r = m.abctl("install", E2E / "slot-b-commit", uki)
    installed(m, r, uki)
    assert "is signed by a certificate not in db; its digest is allowed by db entry 1" in r.stderr, r.stderr


def test_signed_installs(m, keys, tmp_path):
    # db: a stranger's certificate, then snakeoil's; dbx: an unrelated certificate.
    m.secure_boot(db=esl_cert(tmp_path, keys["stranger"][1]) + esl_cert(tmp_path, SNAKEOIL_PEM),
                  dbx=esl_cert_hash(keys["stranger"][1]))
    uki = sign(keys, "snakeoil", m.ukis["b-commit"], tmp_path / "signed.efi")
    r = m.abctl("install", E2E / "slot-b-commit", uki)
    installed(m, r, uki)
    assert f'is signed by "{SNAKEOIL_NAME}" (issued by "{SNAKEOIL_NAME}"), which chains to db entry 1' in r.stderr, \
        r.stderr


def ca_and_leaf(tmp_path, expired):
    """A CA (valid now) and a leaf signing key it issued (expired in 2000 if asked), as PEM files."""
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def cert(subject, issuer, key, signer, start, days, ca):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(start)
             .not_valid_after(start + datetime.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        return b.sign(signer, hashes.SHA256())

    name = lambda cn: x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, cn)])  # noqa: E731
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = cert(name("abswitch test CA"), name("abswitch test CA"), ca_key, ca_key, now, 3650, True)
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc) if expired else now
    leaf = cert(name("abswitch test signer"), name("abswitch test CA"), leaf_key, ca_key, start, 1, False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                                               serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"


def test_signed_by_expired_leaf_of_a_db_ca(m, tmp_path):
    # The firmware accepts a signer whose chain reaches a db certificate, and
    # EDK2 checks no validity dates: db holds a CA, the UKI is signed by a
    # leaf it issued that expired in 2000.
    ca, leaf, key = ca_and_leaf(tmp_path, expired=True)
    m.secure_boot(db=esl_cert(tmp_path, ca))
    uki = sign({"leaf": (key, leaf)}, "leaf", m.ukis["b-commit"], tmp_path / "leaf.efi")
    r = m.abctl("install", E2E / "slot-b-commit", uki)
    installed(m, r, uki)
    assert 'signed by "CN=abswitch test signer" (issued by "CN=abswitch test CA"), which chains to db entry 0' \
        in r.stderr, r.stderr


@pytest.mark.parametrize("revoked", ["leaf", "ca"])
def test_dbx_certificate_in_the_chain_revoked(m, tmp_path, revoked):
    # db holds the CA; dbx the signing leaf, or the CA itself: either is in the signer's chain.
    ca, leaf, key = ca_and_leaf(tmp_path, expired=False)
    m.secure_boot(db=esl_cert(tmp_path, ca), dbx=esl_cert(tmp_path, leaf if revoked == "leaf" else ca))
    uki = sign({"leaf": (key, leaf)}, "leaf", m.ukis["b-commit"], tmp_path / "leaf.efi")
    refused(m, uki, 'signed by "CN=abswitch test signer" (issued by "CN=abswitch test CA"), and its chain holds a '
            "certificate revoked by dbx entry 0 (signature list 0, X509 "
            f'"CN=abswitch test {"signer" if revoked == "leaf" else "CA"}"')


@pytest.mark.parametrize("how", ["SecureBoot=0", "SetupMode=1", "no SecureBoot variable"])
def test_secure_boot_off_no_check(m, how):
    if how == "SecureBoot=0":
        m.secure_boot(on=False)
        says = "Secure Boot is off (SecureBoot is 0)"
    elif how == "SetupMode=1":
        m.secure_boot(setup_mode=True)
        says = "Secure Boot is off (the firmware is in setup mode (SetupMode is 1))"
    else:
        says = "Secure Boot is off (there is no SecureBoot variable"
    r = m.abctl("install", E2E / "slot-b-commit", m.ukis["b-commit"])
    installed(m, r, m.ukis["b-commit"])
    assert says in r.stderr and "the UKI's signature is not checked" in r.stderr, r.stderr


@pytest.mark.parametrize("which", ["db", "dbx"])
def test_malformed_database_refused(m, tmp_path, which):
    good = esl_cert(tmp_path, SNAKEOIL_PEM)
    bad = good[:-1]  # SignatureListSize now says one byte more than there is
    m.secure_boot(db=bad if which == "db" else good, dbx=bad if which == "dbx" else None)
    before = m.fingerprint()
    r = m.abctl("install", E2E / "slot-b-commit", m.ukis["b-commit"])
    assert r.returncode == 1, r.stderr
    assert f"The Secure Boot database {which} in {m.efivars} is not a valid EFI_SIGNATURE_LIST sequence" in r.stderr
    assert "Nothing was changed" in r.stderr
    assert m.fingerprint() == before


def test_oci_unsigned_refused(m, keys, tmp_path):
    # The OCI source goes through the same check, on the UKI blob, before the ESP is touched.
    make_layout(tmp_path / "oci", m.ukis["b-commit"])
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM))
    before = m.fingerprint()
    r = m.abctl("install", f"oci:{tmp_path}/oci:v2")
    assert r.returncode == 1, r.stderr
    assert "it is not signed" in r.stderr and "Nothing was changed" in r.stderr, r.stderr
    assert m.fingerprint() == before


def test_oci_signed_installs(m, keys, tmp_path):
    uki = sign(keys, "snakeoil", m.ukis["b-commit"], tmp_path / "signed.efi")
    make_layout(tmp_path / "oci", uki)
    m.secure_boot(db=esl_cert(tmp_path, SNAKEOIL_PEM))
    r = m.abctl("install", f"oci:{tmp_path}/oci:v2")
    installed(m, r, uki)
    assert "which chains to db entry 0" in r.stderr, r.stderr
