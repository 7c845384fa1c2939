"""Python client of postcopyd's control RPC (service pcd.Control).

    from postcopyd import Client, RpcError

    with Client(unix="/run/postcopyd/control.sock") as c:
        c.prepare(id="vm42", listen="0.0.0.0:4444",
                  tls={"dir": "/etc/postcopyd/tls"})
    with Client(tcp="src.example:7070", tls_dir="/etc/orch/tls") as c:
        c.migrate(id="vm42", dest="dst.example:4444")
        for event in c.watch(id="vm42"):
            print(event.info.state, event.info.pages_valid)

One method per RPC of service pcd.Control (proto/control.proto), named in
snake_case and taking the request's fields as keyword arguments; methods
appended to the service appear without a change here. The framing is
proto/README.md's.
"""

from .client import Client, ProtocolError, RpcError, StatusCode

__all__ = ["Client", "ProtocolError", "RpcError", "StatusCode"]
__version__ = "@PCD_VERSION@"
