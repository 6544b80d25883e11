"""The grpc_cart.py service over TLS, for the stripped-TLS tests
(tests/stripped_tls.rs). grpcio links BoringSSL statically into its
extension module, without symbols.

    grpc_tls.py server PORT CERT KEY
        Serves /shop.Cart/Add and /shop.Cart/Remove (see grpc_cart.py) over
        TLS on 127.0.0.1:PORT; prints "serving".

    grpc_tls.py client PORT CERT N
        Opens ONE TLS channel (the certificate, issued to IP 127.0.0.1, is
        the trust root), makes N calls alternating Add i and
        Remove i, and prints one JSON line per call:
        {"method": ..., "item": i, "code": "OK"|"NOT_FOUND", "message": ...}.
"""

import os
import sys
import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpc_cart import call_and_print, cart_server, cart_stubs  # noqa: E402


def serve(port, cert, key):
    server = cart_server()
    with open(cert, "rb") as f:
        cert_pem = f.read()
    with open(key, "rb") as f:
        key_pem = f.read()
    creds = grpc.ssl_server_credentials([(key_pem, cert_pem)])
    server.add_secure_port(f"127.0.0.1:{port}", creds)
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def client(port, cert, n):
    with open(cert, "rb") as f:
        root = f.read()
    creds = grpc.ssl_channel_credentials(root_certificates=root)
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}",
        creds,
        options=[("grpc.use_local_subchannel_pool", 1)],
    )
    stubs = cart_stubs(channel)
    for i in range(n):
        method = "Add" if i % 2 == 0 else "Remove"
        call_and_print(stubs, method, i)
    channel.close()


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "server":
        serve(port, sys.argv[3], sys.argv[4])
    else:
        client(port, sys.argv[3], int(sys.argv[4]))
