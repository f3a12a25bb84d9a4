#!/usr/bin/env python3
"""Recomputes PROTOCOL.md's Transport security vectors with an implementation
independent of Go's (pyca/cryptography, and HChaCha20 written here from RFC
draft-irtf-cfrg-xchacha), so that the vectors check the construction and not
only our code. Run: python3 secure/testdata/vectors_check.py (needs the
`cryptography` package; not part of CI)."""
import struct
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes

def hkdf(ikm, salt, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt or None, info=info).derive(ikm)

def rotl(v, c): return ((v << c) & 0xffffffff) | (v >> (32 - c))
def qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xffffffff; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xffffffff; s[b] = rotl(s[b] ^ s[c], 7)
def hchacha20(key, nonce16):
    s = list(struct.unpack('<4I', b'expand 32-byte k')) + list(struct.unpack('<8I', key)) + list(struct.unpack('<4I', nonce16))
    for _ in range(10):
        qr(s,0,4,8,12); qr(s,1,5,9,13); qr(s,2,6,10,14); qr(s,3,7,11,15)
        qr(s,0,5,10,15); qr(s,1,6,11,12); qr(s,2,7,8,13); qr(s,3,4,9,14)
    return struct.pack('<8I', *(s[0:4] + s[12:16]))
def xseal(key, nonce24, pt, ad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b'\0\0\0\0' + nonce24[16:], pt, ad)

secret = b'0123456789abcdef0123456789abcdef'
K = bytes(range(0x40, 0x60)); tnonce = bytes(range(0xa0, 0xb8)); snonce = bytes(range(0x10, 0x20))
exp = struct.pack('>Q', 1800000300)
tkey = hkdf(secret, b'', b'covey ticket key v1', 32)
ticket = exp + tnonce + xseal(tkey, tnonce, K + bytes([5]) + b'alice', b'covey ticket v1' + exp)
keys = hkdf(K, snonce, b'covey connection keys v1', 64)
c2s, s2c = keys[:32], keys[32:]
cnonce = bytes(range(0x30, 0x40))
keys2 = hkdf(K, snonce + cnonce, b'covey connection keys v2', 64)
nonce0 = b'\0' * 12
rec = struct.pack('>I', 21) + ChaCha20Poly1305(c2s).encrypt(nonce0, b'hello', struct.pack('>I', 21))
hdr = b'\x20' + b'\0' * 8
pkt = hdr + ChaCha20Poly1305(s2c).encrypt(nonce0, b'hello', hdr)
want = {
    'ticket': '000000006b49d32ca0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b760bf8f21af4f9dc1a05ed4ba8505c45d28c962a3fda23e9ce9579a0443dcca047df9951bded2fa124230ff04e0a5d763fc4829d4c8e0',
    'c2s': '6fd0f1507afa7c3a24cd4e8dd825a6e8e900f38a42e0d60f92b2de4b55f7d7ee',
    's2c': 'e5dc939ad14be8ece96d9568d1135d666a259f69d9d021ad170f46aff593becc',
    'record': '000000153319842a31e7183a86089117b81e51d88387aaf6c1',
    'packet': '200000000000000000b83e0e4525f121c2a9b0cd0a1eea24037d1693b633',
    'v2 c2s': 'e6bcfd8794d81d8b3097daea2027ac2828a7b55f9bc9094505d85bce2ee55ff6',
    'v2 s2c': 'f7ca8dc9b985ed0fc28ecb5aeca3707b3291bdd8dc093a88e86479e2200ea29c',
}
got = {'ticket': ticket.hex(), 'c2s': c2s.hex(), 's2c': s2c.hex(), 'record': rec.hex(), 'packet': pkt.hex(),
       'v2 c2s': keys2[:32].hex(), 'v2 s2c': keys2[32:].hex()}
bad = [k for k in want if want[k] != got[k]]
for k in bad:
    print(k, 'got', got[k], 'want', want[k])
print('all vectors match' if not bad else 'MISMATCH')
raise SystemExit(1 if bad else 0)
