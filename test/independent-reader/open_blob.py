#!/usr/bin/env python3
"""Independent reader for Coffer chunk format v1 and pack file v2.

Written only from DESIGN.md "Chunk format v1" (normative) and docs/format.md "Pack file v2" - it shares no
code with the TypeScript project - so that a blob sealed by Coffer can be checked and recovered without
Coffer. Needs Python 3.8+ and the `cryptography` package (pip install cryptography).

Usage: open_blob.py CHUNK_DIR DEK_HEX BLOB_ID_HEX [--out FILE] [--size N] [--key-generation N]
       open_blob.py --store ROOT DEK_HEX BLOB_ID_HEX [...]

With --store, the blob's chunks are looked up in the packs under ROOT/packs/ (every pack's index checked by
the pack rules; a damaged pack is not used at all), then in ROOT/chunks/<hex[0:2]>/<hex[2:4]>/<blob hex>/.

CHUNK_DIR holds one blob's chunk files, named as 8 lowercase hex digits (the chunk index), e.g. the
filesystem backend's <root>/chunks/<hex[0:2]>/<hex[2:4]>/<blob hex>/. Other names (temporary files) are
ignored. Every check passes before a byte of plaintext is written: the plaintext is first written to a
temporary file and only renamed to --out (or copied to standard output) once every chunk verified.
Exit status: 0 success, 1 the blob failed a check (one-line reason on stderr), 2 usage error.
"""
import argparse
import hashlib
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

# docs/format.md "Pack file v2": chunks back to back, then entries of blob id(16) index(u32 BE) offset(u64 BE)
# length(u32 BE), then the trailer magic(4) version(1) reserved(3) count(u32 BE) reserved(u32) sha256(32)
PACK_ENTRY = struct.Struct(">16sIQI")
PACK_TRAILER = struct.Struct(">4sB3sII32s")
assert PACK_ENTRY.size == 32 and PACK_TRAILER.size == 48
PACK_MAGIC = b"CFP2"
PACK_NAME = re.compile(r"^[0-9a-f]{32}$")
FANOUT = re.compile(r"^[0-9a-f]{2}$")


class PackError(Exception):
    """A pack failed a check of its index or trailer."""


def read_pack_index(path):
    """The entries (blob id, index, offset, length) of one pack, after every check of the pack rules."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size < PACK_TRAILER.size:
            raise PackError("shorter than its trailer")
        f.seek(size - PACK_TRAILER.size)
        trailer = f.read(PACK_TRAILER.size)
        magic, version, reserved3, count, reserved4, digest = PACK_TRAILER.unpack(trailer)
        if magic != PACK_MAGIC or version != 2 or reserved3 != b"\0\0\0" or reserved4 != 0:
            raise PackError("bad magic, version or reserved bytes")
        if count < 1 or count > 65536:
            raise PackError("entry count %d out of range" % count)
        index_bytes = 32 * count
        if size < PACK_TRAILER.size + index_bytes + 64 * count:
            raise PackError("too short for %d entries" % count)
        f.seek(size - PACK_TRAILER.size - index_bytes)
        index = f.read(index_bytes)
    if hashlib.sha256(index + trailer[:16]).digest() != digest:
        raise PackError("index checksum mismatch")
    entries = []
    seen = set()
    expected = 0
    for i in range(count):
        blob, chunk_index, offset, length = PACK_ENTRY.unpack_from(index, 32 * i)
        if offset != expected or length < 64 or length > HEADER_SIZE + CHUNK_SIZE + TAG_SIZE:
            raise PackError("entry %d: offset %d length %d" % (i, offset, length))
        if (blob, chunk_index) in seen:
            raise PackError("entry %d repeats a chunk" % i)
        seen.add((blob, chunk_index))
        entries.append((blob, chunk_index, offset, length))
        expected = offset + length
    if expected != size - PACK_TRAILER.size - index_bytes:
        raise PackError("chunks do not end where the index begins")
    return entries


def packed_chunks(packs_dir, blob_id):
    """{index: (pack path, offset, length)} of the blob's chunks in every good pack under packs_dir."""
    found = {}
    if not os.path.isdir(packs_dir):
        return found
    for fan in sorted(os.listdir(packs_dir)):
        if not FANOUT.match(fan):
            continue
        for name in sorted(os.listdir(os.path.join(packs_dir, fan))):
            if not PACK_NAME.match(name) or not name.startswith(fan):
                continue
            path = os.path.join(packs_dir, fan, name)
            try:
                entries = read_pack_index(path)
            except PackError:
                continue  # a damaged pack is not used at all
            for blob, chunk_index, offset, length in entries:
                if blob == blob_id and chunk_index not in found:
                    found[chunk_index] = (path, offset, length)
    return found


def read_store_chunk(packed, chunk_dir, index):
    """The bytes of chunk `index`: from its pack if packed, else its v1 chunk file."""
    if index in packed:
        path, offset, length = packed[index]
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise BlobError("chunk %08x: its pack ends early" % index)
        return data
    with open(os.path.join(chunk_dir, "%08x" % index), "rb") as f:
        return f.read(HEADER_SIZE + CHUNK_SIZE + TAG_SIZE + 1)


def open_store_blob(root, dek, blob_id, sink, size=None, key_generation=None):
    """As open_blob, with the blob's chunks found in ROOT's packs first, then ROOT's chunk files."""
    hexid = blob_id.hex()
    chunk_dir = os.path.join(root, "chunks", hexid[0:2], hexid[2:4], hexid)
    packed = packed_chunks(os.path.join(root, "packs"), blob_id)
    files = set()
    if os.path.isdir(chunk_dir):
        files = {int(n, 16) for n in os.listdir(chunk_dir) if CHUNK_NAME.match(n)}
    indices = sorted(set(packed) | files)
    if not indices:
        raise BlobError("no chunks of blob %s under %s" % (hexid, root))
    for expected, index in enumerate(indices):
        if index != expected:
            raise BlobError("chunk %08x is missing" % expected)
    aead = AESGCM(dek)
    total = 0
    for index in indices:
        data = read_store_chunk(packed, chunk_dir, index)
        gen, plaintext = open_chunk(aead, data, "%08x" % index, index, len(indices), blob_id, key_generation)
        key_generation = gen
        sink.write(plaintext)
        total += len(plaintext)
    if size is not None and total != size:
        raise BlobError("blob holds %d bytes, expected %d" % (total, size))
    return total


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
    p = argparse.ArgumentParser(description="Verify and decrypt one Coffer blob (chunk format v1, pack file v2).")
    p.add_argument("--store", help="a filesystem store root: look in its packs, then its chunk files")
    p.add_argument("chunk_dir", nargs="?" if "--store" in argv else None)
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
            if args.store:
                open_store_blob(args.store, args.dek, args.blob_id, tmp, args.size, args.key_generation)
            else:
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
