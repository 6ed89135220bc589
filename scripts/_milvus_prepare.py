"""Prepare one Milvus standalone server (run by scripts/_milvus_server.py with ``.venv-milvus/bin/python``).

Uses only the ``milvus`` package (2.3 series) and the standard library: unpacks the server binary
and its libraries once into ``<venv>/milvus-server/bin`` (the package keeps them xz-compressed),
writes the server's configuration into the data dir given as the only argument, with every port
one the OS just handed out on loopback and the embedded etcd on two such ports too (its default
2379/2380 would collide with any other server), and prints what the caller needs as JSON: the
binary, its library folder, the proxy (client) port and the health (metrics) port. It starts
nothing: the caller runs the binary itself, so that it can stop and kill exactly that process.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(data_dir: str) -> None:
    import milvus  # the server package, in this virtualenv only

    cache = os.path.join(sys.prefix, "milvus-server")
    milvus._initialize_data_files(cache)  # idempotent (an md5 per file): unpacks once per install
    config = milvus.MilvusServerConfig(data_dir=data_dir)
    for key in list(config.configurable_items):
        if key.endswith("_port"):
            config.set(key, _free_port())  # where resolve() starts looking for a port it can bind
    config.resolve()  # binds each port to check it, writes <data_dir>/configs/milvus.yaml
    metrics_port = _free_port()
    peer_port, client_port = _free_port(), _free_port()
    etcd_yaml = os.path.join(data_dir, "configs", "embed-etcd.yaml")
    with open(etcd_yaml, "w", encoding="utf-8") as f:
        f.write(
            "name: faceaudit-test\n"
            f"listen-peer-urls: http://127.0.0.1:{peer_port}\n"
            f"initial-advertise-peer-urls: http://127.0.0.1:{peer_port}\n"
            f"initial-cluster: faceaudit-test=http://127.0.0.1:{peer_port}\n"
            f"listen-client-urls: http://127.0.0.1:{client_port}\n"
            f"advertise-client-urls: http://127.0.0.1:{client_port}\n")
    milvus_yaml = os.path.join(data_dir, "configs", "milvus.yaml")
    with open(milvus_yaml, encoding="utf-8") as f:
        text = f.read()
    if "\netcd:\n" not in text:
        raise RuntimeError(f"no etcd section in {milvus_yaml}")
    # etcd.config.path: the embedded etcd's own configuration (ports); etcd.endpoints is unused by
    # the embedded client but kept consistent
    text = text.replace("\netcd:\n", f"\netcd:\n  config:\n    path: {etcd_yaml}\n", 1)
    text = text.replace(f"endpoints: localhost:{config.get('etcd_port')}", f"endpoints: localhost:{client_port}", 1)
    with open(milvus_yaml, "w", encoding="utf-8") as f:
        f.write(text)
    bin_dir = os.path.join(cache, "bin")
    print(json.dumps({"binary": os.path.join(bin_dir, "milvus"), "lib_dir": bin_dir,
                      "port": int(config.get("proxy_port")), "metrics_port": metrics_port,
                      "version": milvus.__version__}))


if __name__ == "__main__":
    main(sys.argv[1])
