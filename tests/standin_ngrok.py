#!/usr/bin/env python3
"""A STAND-IN for the ngrok agent, for tests only: ngrok's servers cannot be reached here.

pyngrok starts it exactly as it starts the real agent (`start --none --log stdout
...`), reads its log lines and calls its local API. Its "public" URL is a proxy on
127.0.0.1 that forwards to the tunnelled port, so requests really flow through it.
An authtoken starting "invalid", and "busy", make it fail as ngrok does (ERR_NGROK_105, 108).
Like ngrok, it adds X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host to what it forwards.
"""
import http.client
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def log(lvl, msg, **fields):
    extra = " ".join(f'{k}="{v}"' for k, v in fields.items())
    print(f't={time.strftime("%Y-%m-%dT%H:%M:%S")} lvl={lvl} msg="{msg}" {extra}', flush=True)


def forwarder(upstream_port):
    class Forward(BaseHTTPRequestHandler):
        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=10)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            # As ngrok does: append the client's address and the scheme, and say which host was asked for.
            for name, value in (("X-Forwarded-For", self.client_address[0]), ("X-Forwarded-Proto", "http")):
                headers[name] = f"{self.headers[name]}, {value}" if self.headers.get(name) else value
            headers["X-Forwarded-Host"] = self.headers.get("X-Forwarded-Host") or self.headers.get("Host", "")
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for k, v in answer.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _forward

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv):
    token = argv[argv.index("--authtoken") + 1] if "--authtoken" in argv else ""
    if token.startswith("invalid"):  # ngrok's own words, which repeat the token
        log("eror", "session closing", err="authentication failed: The authtoken you specified does not look "
            f"like a proper ngrok tunnel authtoken.\\nYour authtoken: {token}\\nInstructions to install your "
            "authtoken are on your ngrok dashboard:\\nhttps://dashboard.ngrok.com/get-started/your-authtoken"
            "\\r\\n\\r\\nERR_NGROK_105\\r\\n")
        return 1
    if token == "busy":
        log("eror", "session closing", err="Your account is limited to 1 simultaneous ngrok agent sessions. "
            "ERR_NGROK_108")
        return 1
    endpoints = {}

    class Api(BaseHTTPRequestHandler):
        def _json(self, status, data=None):
            body = json.dumps(data).encode() if data is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._json(200, {"endpoints": [e["data"] for e in endpoints.values()], "uri": "/api/endpoints"})

        def do_POST(self):
            options = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            upstream = options.get("upstream", {}).get("url") or options.get("addr")
            port = int(str(upstream).rsplit(":", 1)[-1])
            server = forwarder(port)
            name = options.get("name") or f"endpoint-{len(endpoints) + 1}"
            data = {"name": name, "url": f"http://127.0.0.1:{server.server_port}", "uri": f"/api/endpoints/{name}",
                    "upstream": {"url": f"http://localhost:{port}", "protocol": "http1"}}
            endpoints[name] = {"data": data, "server": server}
            self._json(201, data)

        def do_DELETE(self):
            endpoint = endpoints.pop(self.path.rsplit("/", 1)[-1], None)
            if endpoint:
                endpoint["server"].shutdown()
            self._json(204)

        def log_message(self, *args):
            pass

    api = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    log("info", "starting web service", obj="web", addr=f"127.0.0.1:{api.server_port}")
    log("info", "tunnel session started", obj="tunnels.session")
    log("info", "client session established", obj="csess")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
