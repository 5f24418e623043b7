# b/raw: send EndTxn (api key 26, v0..v3) by hand, since librdkafka refuses (tansu does not advertise it).
import socket, struct, sys
def s16(s): b = s.encode(); return struct.pack(">h", len(b)) + b
def req(sock, key, ver, body, corr):
    hdr = struct.pack(">hhi", key, ver, corr) + s16("probe")
    if ver >= 3 and key == 26:  # flexible versions: tagged fields in header v2
        hdr += b"\x00"
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    sock.settimeout(5)
    try:
        h = sock.recv(4)
        if not h:
            return "connection closed by broker (no response)"
        n = struct.unpack(">i", h)[0]; data = b""
        while len(data) < n: data += sock.recv(n - len(data))
        return f"response {n} bytes: {data.hex()}"
    except socket.timeout:
        return "no response within 5s"
port = int(sys.argv[1]) if len(sys.argv) > 1 else 19092
for ver in (0, 1, 2, 3):
    s = socket.create_connection(("127.0.0.1", port))
    if ver < 3:
        body = s16("probe-txn") + struct.pack(">qhb", 1, 0, 1)
    else:  # compact string + tagged fields
        t = b"probe-txn"; body = bytes([len(t) + 1]) + t + struct.pack(">qhb", 1, 0, 1) + b"\x00"
    print(f"EndTxn v{ver}:", req(s, 26, ver, body, 7))
    s.close()
