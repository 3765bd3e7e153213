#!/usr/bin/env python3
"""A test controller: HTTPS that requires a client certificate from the test CA. It
serves GET /config from files in DIR and appends each POST /info body to DIR/info.log.
The test steers each reply with files in DIR:
  config.json   the body           etag        the ETag (If-None-Match → 304)
  status        the HTTP status    ctype       the Content-Type
  delay         seconds to wait    truncate    claim a longer Content-Length, cut short
It exits by itself after a time limit.
Usage: controller.py DIR HOST PORT CERT KEY CA LIMIT_SECS"""
import http.server
import os
import ssl
import sys
import threading
import time

d, host, port, cert, key, ca, limit = sys.argv[1:8]


def get(name, default=None):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return default
    with open(p, "rb") as f:
        return f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        with open(os.path.join(d, "requests.log"), "a") as f:
            f.write("%s %s inm=%s\n" % (self.command, self.path, self.headers.get("If-None-Match")))

    def do_GET(self):
        if self.path != "/config":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        time.sleep(float(get("delay", b"0")))
        status = int(get("status", b"200"))
        body = get("config.json", b"{}")
        etag = get("etag")
        etag = etag.strip() if etag else etag
        if status == 200 and etag and self.headers.get("If-None-Match") == etag.decode():
            self.send_response(304)
            self.send_header("ETag", etag.decode())
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Type", get("ctype", b"application/json").decode())
        if etag:
            self.send_header("ETag", etag.decode())
        if get("truncate"):
            self.send_header("Content-Length", str(len(body) + 100))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with open(os.path.join(d, "info.log"), "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)
srv = http.server.ThreadingHTTPServer((host, int(port)), Handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
threading.Timer(float(limit), srv.shutdown).start()
with open(os.path.join(d, "ready"), "w") as f:
    f.write("ready")
srv.serve_forever()
