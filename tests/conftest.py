"""Shared fixtures: an isolated build folder, and no network — in this process and in kernels."""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

_ALLOWED_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}

SITECUSTOMIZE = textwrap.dedent(
    '''
    # Written by tests/conftest.py: block every non-loopback connection in this interpreter.
    import socket as _s
    _ALLOWED = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
    _orig_connect = _s.socket.connect
    _orig_gai = _s.getaddrinfo
    def _host(addr):
        return addr[0] if isinstance(addr, tuple) else None
    def _connect(self, addr):
        h = _host(addr)
        if h is not None and h not in _ALLOWED:
            raise OSError(f"network blocked by the test suite: connect to {addr!r}")
        return _orig_connect(self, addr)
    def _gai(host, *a, **k):
        if host not in _ALLOWED and host is not None:
            raise OSError(f"network blocked by the test suite: resolve {host!r}")
        return _orig_gai(host, *a, **k)
    _s.socket.connect = _connect
    _s.getaddrinfo = _gai
    '''
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never touch the network: any non-loopback connect or lookup raises."""
    orig_connect = socket.socket.connect
    orig_gai = socket.getaddrinfo

    def connect(self, addr):
        if isinstance(addr, tuple) and addr[0] not in _ALLOWED_HOSTS:
            raise OSError(f"network blocked by the test suite: connect to {addr!r}")
        return orig_connect(self, addr)

    def gai(host, *a, **k):
        if host is not None and host not in _ALLOWED_HOSTS:
            raise OSError(f"network blocked by the test suite: resolve {host!r}")
        return orig_gai(host, *a, **k)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", gai)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")


@pytest.fixture
def build_dir(tmp_path, monkeypatch) -> Path:
    """A private build folder for the test (``STABLELM2_BUILD_DIR``)."""
    d = tmp_path / "build"
    monkeypatch.setenv("STABLELM2_BUILD_DIR", str(d))
    return d


@pytest.fixture
def offline_kernels(tmp_path, monkeypatch) -> Path:
    """Kernels started from this test inherit a sitecustomize that blocks the network."""
    d = tmp_path / "netblock"
    d.mkdir()
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(d), os.environ.get("PYTHONPATH")])))
    return d
