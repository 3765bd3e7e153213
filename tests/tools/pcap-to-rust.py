#!/usr/bin/env python3
"""Turns selected frames of the capture-dhcp-clients.sh pcaps into Rust byte arrays for
src/wire/testdata.rs. Usage: pcap-to-rust.py DIR > testdata.rs"""
import struct, sys

# (const name, pcap, 1-based frame number, what it is)
FRAMES = [
    ("UDHCPC_DISCOVER", "udhcpc", 1, "busybox udhcpc 1.35 DHCPDISCOVER (broadcast, options 53 57 55 12 60 61)"),
    ("DNSMASQ_OFFER", "udhcpc", 2, "dnsmasq 2.90 DHCPOFFER to udhcpc (unicast to the client MAC)"),
    ("UDHCPC_REQUEST", "udhcpc", 3, "busybox udhcpc DHCPREQUEST, SELECTING (options 50 and 54)"),
    ("DNSMASQ_ACK", "udhcpc", 4, "dnsmasq DHCPACK to udhcpc"),
    ("UDHCPC_ARP_REQUEST", "udhcpc", 5, "ARP request from udhcpc's host for the gateway"),
    ("KERNEL_ARP_REPLY", "udhcpc", 6, "Linux ARP reply for the gateway"),
    ("UDHCPC_RENEW", "udhcpc", 7, "busybox udhcpc DHCPREQUEST, RENEWING (unicast, ciaddr set)"),
    ("UDHCPC_RELEASE", "udhcpc", 11, "busybox udhcpc DHCPRELEASE (unicast)"),
    ("UDHCPC_ARP_PROBE", "udhcpc-decline", 5, "busybox udhcpc -a ARP probe (sender IP 0.0.0.0)"),
    ("KERNEL_ARP_PROBE_REPLY", "udhcpc-decline", 6, "Linux ARP reply to that probe: the address is in use"),
    ("UDHCPC_DECLINE", "udhcpc-decline", 7, "busybox udhcpc DHCPDECLINE (broadcast, options 50 and 54)"),
    ("DHCLIENT_DISCOVER", "dhclient", 1, "ISC dhclient 4.4.3 DHCPDISCOVER (no client id)"),
    ("DHCLIENT_REQUEST", "dhclient", 3, "ISC dhclient DHCPREQUEST, SELECTING"),
    ("DNSMASQ_ACK_DHCLIENT", "dhclient", 4, "dnsmasq DHCPACK to dhclient (options 121, 26, 42, 15)"),
    ("DHCLIENT_INIT_REBOOT", "dhclient", 5, "ISC dhclient DHCPREQUEST, INIT-REBOOT (option 50, no 54, no ciaddr)"),
    ("DHCLIENT_RELEASE", "dhclient", 9, "ISC dhclient DHCPRELEASE (unicast)"),
    ("DHCPCD_DISCOVER", "dhcpcd", 1, "dhcpcd 9.4.1 DHCPDISCOVER (rapid commit 80, DUID client id, 145)"),
    ("DHCPCD_REQUEST", "dhcpcd", 3, "dhcpcd DHCPREQUEST, SELECTING"),
    ("DHCPCD_RENEW", "dhcpcd", 7, "dhcpcd DHCPREQUEST, RENEWING (unicast, ciaddr set)"),
    ("DHCPCD_INIT_REBOOT", "dhcpcd", 11, "dhcpcd DHCPREQUEST after restart from its lease file"),
    ("DHCPCD_RELEASE", "dhcpcd", 13, "dhcpcd DHCPRELEASE (unicast)"),
    ("DHCPCD_INFORM", "dhcpcd", 17, "dhcpcd --inform DHCPINFORM (ciaddr set, broadcast)"),
    ("DNSMASQ_INFORM_ACK", "dhcpcd", 20, "dnsmasq DHCPACK to the DHCPINFORM (no lease time, yiaddr 0)"),
]

def frames(path):
    data = open(path, "rb").read()
    magic = data[:4]
    e = "<" if magic == b"\xd4\xc3\xb2\xa1" else ">"
    off, out = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return out

d = sys.argv[1]
print("//! Frames captured from real DHCP clients and servers (tools/capture-dhcp-clients.sh,")
print("//! converted by tools/pcap-to-rust.py): whole Ethernet frames as seen on the server's")
print("//! veth. Client MAC 72:1e:a0:80:59:50, server 82:65:8d:5f:85:12 at 10.9.0.1 (dnsmasq).")
print("#![allow(dead_code)] // a library of captures; not every test uses every frame")
print()
cache = {}
for name, pcap, n, what in FRAMES:
    fr = cache.setdefault(pcap, frames(f"{d}/{pcap}.pcap"))[n - 1]
    print(f"/// {what}.")
    print(f"pub const {name}: [u8; {len(fr)}] = [")
    for i in range(0, len(fr), 16):
        print("    " + " ".join(f"0x{b:02x}," for b in fr[i:i + 16]))
    print("];")
    print()
