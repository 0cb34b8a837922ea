#!/usr/bin/env python3
"""A stand-in for the webshop's HTTP API in the example: it keeps the
customer documents syncfleet sends and prints each request as it arrives.

    webshop_api.py PORT_FILE LOG_FILE
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

customers = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        with lock:
            if self.command in ("PUT", "POST"):
                customers[self.path] = json.loads(body) if body else None
            elif self.command == "DELETE":
                customers.pop(self.path, None)
            line = f"webshop: {self.command} {self.path} {body}".rstrip()
            print(line, flush=True)
            with open(sys.argv[2], "a") as log:
                log.write(line + "\n")
        if self.command == "GET":
            with lock:
                doc = json.dumps(customers, indent=2).encode()
            return self._answer(200, doc)
        self._answer(200, b'{"ok":true}')

    do_GET = do_PUT = do_POST = do_DELETE = _handle


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
