"""The consumer's end of the agent's encrypted sink, written with the `cryptography` package.

keygen DH_PATH          make an X25519 key pair, publish the public key at DH_PATH as
                        {"curve25519_public_key": "<base64>"}, print the private key in base64
open KEY FILE DERIVE AAD
                        decrypt the envelope in FILE with the base64 private key KEY; DERIVE is
                        1 for an HKDF-SHA256 key (salt: smaller public key, info: larger), 0 for
                        the raw shared secret; the plaintext goes to stdout as is
"""

import base64
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


def raw_public(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def keygen(dh_path):
    key = X25519PrivateKey.generate()
    with open(dh_path, "w") as out:
        json.dump({"curve25519_public_key": base64.b64encode(raw_public(key)).decode()}, out)
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    sys.stdout.write(base64.b64encode(private).decode())


def open_envelope(private_b64, path, derive, aad):
    ours = X25519PrivateKey.from_private_bytes(base64.b64decode(private_b64))
    with open(path) as envelope_file:
        envelope = json.load(envelope_file)
    if sorted(envelope) != ["curve25519_public_key", "encrypted_payload", "nonce"]:
        sys.exit("unexpected envelope fields: %s" % sorted(envelope))

    theirs = base64.b64decode(envelope["curve25519_public_key"], validate=True)
    shared = ours.exchange(X25519PublicKey.from_public_bytes(theirs))
    if derive == "1":
        low, high = sorted([raw_public(ours), theirs])
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=low, info=high).derive(shared)
    else:
        key = shared

    nonce = base64.b64decode(envelope["nonce"], validate=True)
    if len(nonce) != 12:
        sys.exit("nonce is %d bytes" % len(nonce))
    sealed = base64.b64decode(envelope["encrypted_payload"], validate=True)
    plain = AESGCM(key).decrypt(nonce, sealed, aad.encode() or None)
    sys.stdout.buffer.write(plain)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "keygen":
        keygen(*args)
    elif command == "open":
        open_envelope(*args)
    else:
        sys.exit("unknown command " + command)
