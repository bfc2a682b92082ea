"""The download path against a real HTTP server on 127.0.0.1 serving a tarball the test builds."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rnnbench.data.imdb import IMDB, load_imdb
from rnnbench.data.text import TextDataset, download, resolve_source
from rnnbench.errors import DataError


class TarballServer:
    """Serves one file at /aclImdb_v1.tar.gz, honouring `Range: bytes=N-`, and logs the requests."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.requests: list[str | None] = []  # the Range header of each request
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.headers.get("Range"))
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                if start >= len(server.payload):
                    self.send_response(416)
                    self.end_headers()
                    return
                body = server.payload[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{IMDB.filename}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(tiny_tarball):
    served = TarballServer(tiny_tarball.read_bytes())
    yield served
    served.close()


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def served(url: str, payload: bytes) -> TextDataset:
    """IMDB as it would be if its official url and checksum were the local server's."""
    return dataclasses.replace(IMDB, url=url, known_hash=md5(payload))


def test_download_checks_hash_and_is_then_served_from_cache(server, tmp_path):
    dataset = served(server.url, server.payload)
    source = resolve_source(dataset)
    assert source.path.read_bytes() == server.payload and source.origin == f"downloaded imdb copy {source.path}"
    assert len(load_imdb(source.path).train) == 160
    assert resolve_source(dataset) == source
    assert server.requests == [None]  # the second resolution used the cache


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    half = len(server.payload) // 2
    (tmp_path / (IMDB.filename + ".part")).write_bytes(server.payload[:half])
    path = download(served(server.url, server.payload), tmp_path)
    assert path.read_bytes() == server.payload
    assert server.requests == [f"bytes={half}-"]
    assert not (tmp_path / (IMDB.filename + ".part")).exists()


def test_checksum_mismatch_is_an_error_and_leaves_no_trusted_file(server, tmp_path):
    with pytest.raises(DataError, match="corrupt"):
        download(served(server.url, b"something else"), tmp_path)
    assert not any(tmp_path.iterdir())
    path = download(served(server.url, server.payload), tmp_path)  # a retry starts from scratch
    assert path.read_bytes() == server.payload


def test_offline_with_nothing_local_says_where_it_looked_and_how_to_fix(tmp_path):
    closed = TarballServer(b"")
    closed.close()  # nothing listens on that port any more
    with pytest.raises(DataError) as error:
        resolve_source(served(closed.url, b""))
    message = str(error.value)
    assert "RNNBENCH_IMDB" in message and "--data" in message and closed.url in message
    assert "\n" not in message
