#!/usr/bin/env python3
"""Independent reader for Coffer chunk format v1.

Written only from DESIGN.md "Chunk format v1" (normative) - it shares no code with the TypeScript project -
so that a blob sealed by Coffer can be checked and recovered without Coffer. Needs Python 3.8+ and the
`cryptography` package (pip install cryptography).

Usage: open_blob.py CHUNK_DIR DEK_HEX BLOB_ID_HEX [--out FILE] [--size N] [--key-generation N]

CHUNK_DIR holds one blob's chunk files, named as 8 lowercase hex digits (the chunk index), e.g. the
filesystem backend's <root>/chunks/<hex[0:2]>/<hex[2:4]>/<blob hex>/. Other names (temporary files) are
ignored. Every check passes before a byte of plaintext is written: the plaintext is first written to a
temporary file and only renamed to --out (or copied to standard output) once every chunk verified.
Exit status: 0 success, 1 the blob failed a check (one-line reason on stderr), 2 usage error.
"""
import argparse
import os
import re
import struct
import sys
import tempfile

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# DESIGN.md "Chunk format v1"
CHUNK_SIZE = 8 * 1024 * 1024
HEADER_SIZE = 48
TAG_SIZE = 16
MAGIC = b"CFC1"
VERSION = 1
FLAG_FINAL = 0x01
# magic(4) version(1) flags(1) reserved(2) blob id(16) index(u32 BE) key generation(u32 BE)
# plaintext length(u32 BE) nonce(12)
HEADER = struct.Struct(">4sBBH16sIII12s")
assert HEADER.size == HEADER_SIZE
CHUNK_NAME = re.compile(r"^[0-9a-f]{8}$")


class BlobError(Exception):
    """The blob failed a check; the message is the one-line reason."""


def parse_hex(value, length, what):
    if not re.fullmatch(r"[0-9a-f]{%d}" % (2 * length), value):
        raise argparse.ArgumentTypeError("%s must be %d lowercase hex characters" % (what, 2 * length))
    return bytes.fromhex(value)


def list_chunks(chunk_dir):
    """Chunk file names by index; indices must be exactly 0..n-1."""
    try:
        names = sorted(n for n in os.listdir(chunk_dir) if CHUNK_NAME.match(n))
    except OSError as e:
        raise BlobError("cannot list %s: %s" % (chunk_dir, e.strerror))
    if not names:
        raise BlobError("no chunk files in %s" % chunk_dir)
    for expected, name in enumerate(names):
        if int(name, 16) != expected:
            raise BlobError("chunk %08x is missing" % expected)
    return names


def open_chunk(aead, data, name, index, count, blob_id, key_generation):
    """Checks one chunk file and returns (key generation, plaintext); raises BlobError on any defect."""
    where = "chunk %s" % name
    if len(data) < HEADER_SIZE + TAG_SIZE or len(data) > HEADER_SIZE + CHUNK_SIZE + TAG_SIZE:
        raise BlobError("%s: size %d is outside %d..%d" % (where, len(data), HEADER_SIZE + TAG_SIZE, HEADER_SIZE + CHUNK_SIZE + TAG_SIZE))
    header = data[:HEADER_SIZE]
    magic, version, flags, reserved, hdr_blob, hdr_index, hdr_keygen, length, nonce = HEADER.unpack(header)
    if magic != MAGIC:
        raise BlobError("%s: bad magic" % where)
    if version != VERSION:
        raise BlobError("%s: unsupported version %d" % (where, version))
    if flags & ~FLAG_FINAL:
        raise BlobError("%s: unknown flag bits 0x%02x" % (where, flags))
    if reserved != 0:
        raise BlobError("%s: reserved bytes are not zero" % where)
    if hdr_blob != blob_id:
        raise BlobError("%s: belongs to blob %s" % (where, hdr_blob.hex()))
    if hdr_index != index:
        raise BlobError("%s: header says index %d" % (where, hdr_index))
    if key_generation is not None and hdr_keygen != key_generation:
        raise BlobError("%s: key generation %d, expected %d" % (where, hdr_keygen, key_generation))
    if length > CHUNK_SIZE:
        raise BlobError("%s: plaintext length %d exceeds 8 MiB" % (where, length))
    if len(data) != HEADER_SIZE + length + TAG_SIZE:
        raise BlobError("%s: file is %d bytes, header implies %d" % (where, len(data), HEADER_SIZE + length + TAG_SIZE))
    final = bool(flags & FLAG_FINAL)
    last = index == count - 1
    if final and not last:
        raise BlobError("%s: FINAL set but more chunks follow" % where)
    if last and not final:
        raise BlobError("%s: last chunk lacks FINAL (blob truncated?)" % where)
    if not final and length != CHUNK_SIZE:
        raise BlobError("%s: non-final chunk holds %d bytes, not 8 MiB" % (where, length))
    if length == 0 and count != 1:
        raise BlobError("%s: empty chunk in a blob of %d chunks" % (where, count))
    try:
        # AES-256-GCM, IV = nonce, AAD = the whole 48-byte header; ciphertext || tag follow the header.
        plaintext = aead.decrypt(nonce, data[HEADER_SIZE:], header)
    except InvalidTag:
        raise BlobError("%s: authentication tag did not verify (wrong key or altered chunk)" % where)
    return hdr_keygen, plaintext


def open_blob(chunk_dir, dek, blob_id, sink, size=None, key_generation=None):
    """Verifies every chunk of the blob, writing plaintext to `sink`; returns the total size."""
    names = list_chunks(chunk_dir)
    aead = AESGCM(dek)
    total = 0
    for index, name in enumerate(names):
        with open(os.path.join(chunk_dir, name), "rb") as f:
            data = f.read(HEADER_SIZE + CHUNK_SIZE + TAG_SIZE + 1)
        gen, plaintext = open_chunk(aead, data, name, index, len(names), blob_id, key_generation)
        key_generation = gen  # every chunk of a blob has the first chunk's key generation
        sink.write(plaintext)
        total += len(plaintext)
    if size is not None and total != size:
        raise BlobError("blob holds %d bytes, expected %d" % (total, size))
    return total


def main(argv):
    p = argparse.ArgumentParser(description="Verify and decrypt one Coffer blob (chunk format v1).")
    p.add_argument("chunk_dir")
    p.add_argument("dek", type=lambda v: parse_hex(v, 32, "DEK"))
    p.add_argument("blob_id", type=lambda v: parse_hex(v, 16, "blob id"))
    p.add_argument("--out", help="write the plaintext here (default: standard output)")
    p.add_argument("--size", type=int, help="expected plaintext size from the manifest")
    p.add_argument("--key-generation", type=int, help="expected key generation from the manifest")
    args = p.parse_args(argv)

    out_dir = os.path.dirname(os.path.abspath(args.out)) if args.out else None
    try:
        tmp = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".open_blob-", delete=False)
    except OSError as e:
        print("open_blob: cannot create a temporary file: %s" % e, file=sys.stderr)
        return 1
    try:
        try:
            open_blob(args.chunk_dir, args.dek, args.blob_id, tmp, args.size, args.key_generation)
            tmp.flush()
            os.fsync(tmp.fileno())
        finally:
            tmp.close()
        if args.out:
            os.replace(tmp.name, args.out)
        else:
            with open(tmp.name, "rb") as f:
                while True:
                    block = f.read(1 << 20)
                    if not block:
                        break
                    sys.stdout.buffer.write(block)
            sys.stdout.buffer.flush()
    except BlobError as e:
        print("open_blob: %s" % e, file=sys.stderr)
        return 1
    except OSError as e:
        print("open_blob: %s" % e, file=sys.stderr)
        return 1
    finally:
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
