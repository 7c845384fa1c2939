"""The control RPC client: framing (proto/README.md), transports (Unix
socket; TCP with mutual TLS 1.3), and one method per RPC of service
pcd.Control, derived from the service descriptor."""

import enum
import os
import re
import socket
import ssl
import struct

from . import common_pb2, control_pb2

RPC_VERSION = 1
KIND_REQUEST, KIND_REPLY, KIND_EVENT, KIND_ERROR = 1, 2, 3, 4
FLAG_END_STREAM = 0x0001
# length (4), then the 12-byte envelope: version, kind, flags, call id,
# method, reserved. All big-endian.
_HEADER = struct.Struct(">IBBHIHH")
_ENVELOPE = _HEADER.size - 4
# The daemon's frames are capped at 16 MiB (max_frame); refuse more.
MAX_FRAME = 16 << 20
DEFAULT_SOCKET = "/run/postcopyd/control.sock"
SERVICE = control_pb2.DESCRIPTOR.services_by_name["Control"]


class StatusCode(enum.IntEnum):
    """gRPC status codes, as pcd.Status.code uses them."""
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14


def _code_name(code):
    try:
        return StatusCode(code).name
    except ValueError:
        return "CODE_%d" % code


class RpcError(Exception):
    """The daemon answered a call with a non-OK status.

    code: the status code (int; compare with StatusCode), code_name its
    name, message what the daemon said, method the RPC's name, reply the
    whole answer (None for an ERROR frame)."""

    def __init__(self, method, code, message, reply=None):
        self.method = method
        self.code = int(code)
        self.code_name = _code_name(self.code)
        self.message = message
        self.reply = reply
        super().__init__("%s: %s: %s" % (method, self.code_name, message))


class ProtocolError(Exception):
    """The connection carried something that is not a valid answer (bad
    version, oversized or truncated frame, payload that does not parse).
    The connection is closed."""


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _tls_context(tls_dir):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(tls_dir, "ca-cert.pem"))
    ctx.load_cert_chain(os.path.join(tls_dir, "client-cert.pem"),
                        os.path.join(tls_dir, "client-key.pem"))
    return ctx


class Client:
    """A connection to one postcopyd.

    Client(unix=PATH) speaks to the control socket (default: $POSTCOPYD_SOCKET
    or /run/postcopyd/control.sock); Client(tcp="HOST:PORT", tls_dir=DIR) to
    a daemon's control_tcp_listen over mutual TLS 1.3, with ca-cert.pem,
    client-cert.pem and client-key.pem from DIR (server_name: the name the
    daemon's certificate must carry, default HOST). timeout: seconds to wait
    for each answer. Methods raise RpcError when the daemon says no,
    ProtocolError on a broken answer and OSError (ConnectionError,
    socket.timeout, ssl.SSLError) when the transport fails."""

    def __init__(self, unix=None, tcp=None, tls_dir=None, timeout=10.0,
                 server_name=None):
        if unix is not None and tcp is not None:
            raise ValueError("Client: give unix= or tcp=, not both")
        if (tcp is None) != (tls_dir is None):
            raise ValueError("Client: tcp= needs tls_dir= (mutual TLS), "
                             "and tls_dir= goes with tcp=")
        self.timeout = timeout
        self._next_call = 1
        self._pending = {}      # call id -> frames read for another call
        self._buf = b""
        self._ended = False
        if tcp is not None:
            host, sep, port = tcp.rpartition(":")
            if not sep or not port.isdigit():
                raise ValueError("Client: tcp=%r is not HOST:PORT" % tcp)
            host = host.strip("[]")
            raw = socket.create_connection((host, int(port)), timeout)
            try:
                self._sock = _tls_context(tls_dir).wrap_socket(
                    raw, server_hostname=server_name or host)
            except BaseException:
                raw.close()
                raise
            self.address = tcp
        else:
            path = unix or os.environ.get("POSTCOPYD_SOCKET") or DEFAULT_SOCKET
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._sock.settimeout(timeout)
            try:
                self._sock.connect(path)
            except BaseException:
                self._sock.close()
                raise
            self.address = path

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- framing ----

    def _send(self, method, request):
        if self._sock is None:
            raise ConnectionError("this postcopyd Client is closed")
        call = self._next_call
        self._next_call = self._next_call % 0xFFFFFFFF + 1
        payload = request.SerializeToString()
        self._sock.sendall(_HEADER.pack(_ENVELOPE + len(payload),
                                        RPC_VERSION, KIND_REQUEST, 0, call,
                                        method.index, 0) + payload)
        return call

    def _read(self, n, timeout):
        self._sock.settimeout(timeout)
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                self.close()
                raise ConnectionError("postcopyd closed the connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def _frame(self, timeout):
        """Reads one frame: (kind, flags, call id, payload)."""
        length, version, kind, flags, call, _method, _res = _HEADER.unpack(
            self._read(_HEADER.size, timeout))
        if version != RPC_VERSION or length < _ENVELOPE or length > MAX_FRAME:
            self.close()
            raise ProtocolError("bad frame from postcopyd: version %d, "
                                "length %d" % (version, length))
        return kind, flags, call, self._read(length - _ENVELOPE, timeout)

    def _answer(self, call, method, timeout):
        """The next answer to call: (message, end_of_stream). Frames of
        other calls on this connection are kept for them."""
        queue = self._pending.get(call)
        if queue:
            frame = queue.pop(0)
        else:
            while True:
                frame = self._frame(timeout)
                if frame[2] in (call, 0):
                    break
                self._pending.setdefault(frame[2], []).append(frame)
        kind, flags, _call, payload = frame
        end = bool(flags & FLAG_END_STREAM)
        self._ended = end       # for stream(), also when this raises
        if end:
            self._pending.pop(call, None)
        try:
            if kind == KIND_ERROR:
                st = common_pb2.Status.FromString(payload)
                raise RpcError(method.name, st.code or StatusCode.UNKNOWN,
                               st.message)
            if kind not in (KIND_REPLY, KIND_EVENT):
                raise ProtocolError("frame of kind %d from postcopyd" % kind)
            reply = getattr(control_pb2, method.output_type.name).FromString(
                payload)
        except RpcError:
            raise
        except Exception as e:      # google.protobuf.message.DecodeError
            self.close()
            raise ProtocolError("%s: answer does not parse as %s: %s" % (
                method.name, method.output_type.name, e)) from e
        if reply.status.code != StatusCode.OK:
            raise RpcError(method.name, reply.status.code,
                           reply.status.message, reply)
        return reply, end

    # ---- calls ----

    def call(self, name, **fields):
        """Calls the unary RPC `name` (e.g. "Prepare") with the request's
        fields; returns the reply message."""
        method = SERVICE.methods_by_name[name]
        if method.server_streaming:
            raise TypeError("%s is a stream: iterate Client.stream()" % name)
        request = getattr(control_pb2, method.input_type.name)(**fields)
        call = self._send(method, request)
        return self._answer(call, method, self.timeout)[0]

    def stream(self, name, **fields):
        """Calls the streaming RPC `name` (e.g. "Watch"); yields its
        messages until the daemon ends the stream. Leaving the iteration
        early closes the connection (the protocol's way to end a stream)."""
        method = SERVICE.methods_by_name[name]
        request = getattr(control_pb2, method.input_type.name)(**fields)
        call = self._send(method, request)
        done = False
        try:
            while not done:
                try:
                    event, done = self._answer(call, method, self.timeout)
                except RpcError:
                    done = self._ended
                    raise
                yield event
                done = done or getattr(event, "final", False)
        finally:
            if not done:
                self.close()


def _make_method(method):
    stream = method.server_streaming
    fields = ", ".join(f.name for f in method.input_type.fields) or "none"

    def rpc(self, **kw):
        return self.stream(method.name, **kw) if stream else \
            self.call(method.name, **kw)
    rpc.__name__ = _snake(method.name)
    rpc.__qualname__ = "Client." + rpc.__name__
    rpc.__doc__ = "pcd.Control.%s(%s) -> %s%s. Keyword arguments: the " \
        "request's fields (%s); message fields take a dict or a message." % (
            method.name, method.input_type.name,
            "iterator of " if stream else "", method.output_type.name, fields)
    return rpc


for _m in SERVICE.methods:
    setattr(Client, _snake(_m.name), _make_method(_m))
del _m
