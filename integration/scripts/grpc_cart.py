"""A grpcio service and client over h2c, for tests that start the agent
after the connection is open (tests/midway.rs).

    grpc_cart.py server PORT
        Serves /shop.Cart/Add (OK) and /shop.Cart/Remove (OK for an even
        item, NOT_FOUND "no such item" for an odd one). Requests and replies
        are raw bytes (no protoc): the reply is b"ok:" + the request.

    grpc_cart.py client PORT
        Opens ONE channel, makes 10 Add calls and prints "phase1 done".
        Then, for each line read on stdin ("add N" or "remove N"), makes that
        call on the same channel and prints one JSON line:
        {"method": ..., "item": N, "code": "OK"|"NOT_FOUND", "message": ...}.
        Exits at end of input, closing the channel.
"""

import json
import sys
from concurrent import futures

import grpc


def identity(b):
    return b


def add(request, context):
    return b"ok:" + request


def remove(request, context):
    item = int(request.decode())
    if item % 2 == 1:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such item")
    return b"ok:" + request


def cart_server():
    """A grpc server with the shop.Cart service (no port yet)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handlers = {
        "Add": grpc.unary_unary_rpc_method_handler(
            add, request_deserializer=identity, response_serializer=identity
        ),
        "Remove": grpc.unary_unary_rpc_method_handler(
            remove, request_deserializer=identity, response_serializer=identity
        ),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("shop.Cart", handlers),)
    )
    return server


def serve(port):
    server = cart_server()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def call(stub, item):
    try:
        reply = stub(str(item).encode(), timeout=30)
        assert reply == b"ok:" + str(item).encode(), reply
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, e.details() or ""


def cart_stubs(channel):
    """The Add and Remove callables of shop.Cart on `channel`."""
    return {
        m: channel.unary_unary(
            f"/shop.Cart/{m}", request_serializer=identity, response_deserializer=identity
        )
        for m in ("Add", "Remove")
    }


def call_and_print(stubs, method, item):
    """Makes one call and prints its outcome as one JSON line."""
    code, message = call(stubs[method], item)
    print(
        json.dumps({"method": method, "item": item, "code": code, "message": message}),
        flush=True,
    )


def client(port):
    # One subchannel, one HTTP/2 connection, for the whole run.
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
    )
    stubs = cart_stubs(channel)
    for i in range(10):
        code, _ = call(stubs["Add"], i)
        assert code == "OK", code
    print("phase1 done", flush=True)
    for line in sys.stdin:
        words = line.split()
        if len(words) != 2:
            continue
        method = words[0].capitalize()
        item = int(words[1])
        call_and_print(stubs, method, item)
    channel.close()


if __name__ == "__main__":
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "server":
        serve(port)
    else:
        client(port)
