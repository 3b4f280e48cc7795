# Recomputes Coffer's simulated PCR0 of an enclave bundle (docs/attestation.md, "PCR0 recipe"):
#   python3 pcr0.py DIR
import hashlib, os, sys

root = sys.argv[1]
files = []
for d, _, names in os.walk(root):
    files += [os.path.relpath(os.path.join(d, n), root) for n in names]
listing = b''
for p in sorted(files, key=lambda p: p.encode()):
    data = open(os.path.join(root, p), 'rb').read()
    listing += b'%s\0%d\0%s\n' % (p.encode(), len(data), hashlib.sha384(data).hexdigest().encode())
print(hashlib.sha384(listing).hexdigest())
