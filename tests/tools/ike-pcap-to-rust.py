#!/usr/bin/env python3
"""Turns selected packets of the strongSwan interop captures into Rust byte arrays for
src/wire/ike/captures.rs. The captures and ESP keys come from
`ECONET_IKE_KEEP=DIR cargo test --test ike_interop -- --ignored` (keys.txt has lines
"in|out SPI KEYMAT" as the test shell installed them). Needs tshark.
Usage: ike-pcap-to-rust.py DIR > src/wire/ike/captures.rs"""
import subprocess, sys

# (const name, pcap, 1-based frame number, what it is)
FRAMES = [
    ("CHARON_IKE_SA_INIT_REQUEST", "responder", 1, "charon 5.9.8 IKE_SA_INIT request on port 500: SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP)"),
    ("ECONET_IKE_SA_INIT_RESPONSE", "responder", 2, "econet's IKE_SA_INIT response to it on port 500: SA KE No N(NATD_S_IP) N(NATD_D_IP)"),
    ("CHARON_IKE_AUTH_REQUEST", "responder", 3, "charon's IKE_AUTH request on port 4500 (marker stripped): SK"),
    ("CHARON_CREATE_CHILD_SA_REQUEST", "responder", 97, "charon's CREATE_CHILD_SA request (a CHILD SA rekey): SK"),
    ("CHARON_IKE_SA_INIT_RESPONSE", "initiator", 2, "charon's IKE_SA_INIT response on port 4500 (marker stripped) to econet's request"),
    ("ECONET_ESP", "responder", 5, "econet's ESP packet to charon: an ICMP echo request from 10.3.0.20 to 172.31.1.2"),
    ("CHARON_ESP", "responder", 6, "charon's ESP packet to econet (kernel-libipsec): the echo reply"),
]

def payload(d, pcap, frame):
    out = subprocess.run(["tshark", "-r", f"{d}/{pcap}.pcap", "-Y", f"frame.number=={frame}",
                          "-T", "fields", "-e", "udp.payload"], capture_output=True, text=True,
                         check=True).stdout.strip()
    b = bytes.fromhex(out.replace(":", ""))
    if b[:4] == b"\0\0\0\0":
        b = b[4:]
    return b

def rust(name, doc, b):
    lines = [f"/// {doc}", f"pub const {name}: [u8; {len(b)}] = ["]
    for i in range(0, len(b), 16):
        lines.append("    " + " ".join(f"0x{x:02x}," for x in b[i:i + 16]))
    lines.append("];")
    return "\n".join(lines)

def main():
    d = sys.argv[1]
    keys = {}
    for line in open(f"{d}/keys.txt"):
        _, spi, key = line.split()
        keys[int(spi, 16)] = bytes.fromhex(key)
    print("//! Packets captured between econet's IKE/ESP cores and strongSwan's charon 5.9.8")
    print("//! (kernel-libipsec) in the interop test (tests/ike_interop.rs), converted by")
    print("//! tests/tools/ike-pcap-to-rust.py. The ESP keys are the ones econet derived.")
    print("#![allow(dead_code)] // a library of captures; not every test uses every packet")
    print()
    for name, pcap, frame, doc in FRAMES:
        b = payload(d, pcap, frame)
        print(rust(name, doc, b))
        print()
        if name.endswith("_ESP"):
            spi = int.from_bytes(b[:4], "big")
            print(rust(name + "_KEYMAT", f"Key and salt of SPI {spi:08x}.", keys[spi]))
            print()

main()
