"""The network guard: the test run, and every process it starts, cannot leave this machine."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from course_utils.offline import NetworkBlockedError, block_network, network_blocked, unblock_network


def test_guard_is_on_in_the_test_run():
    assert network_blocked()
    assert os.environ["COURSE_OFFLINE"] == "1"


def test_planted_download_fails_fast():
    start = time.monotonic()
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen("https://download.pytorch.org/models/resnet50.pth", timeout=30)
    assert isinstance(err.value.reason, NetworkBlockedError)
    assert "network access is blocked" in str(err.value.reason)
    assert time.monotonic() - start < 5


def test_connect_to_public_address_is_refused():
    with pytest.raises(NetworkBlockedError, match="8.8.8.8"):
        socket.create_connection(("8.8.8.8", 53), timeout=5)


def test_loopback_stays_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    with socket.create_connection(("localhost", port), timeout=5):
        pass
    server.close()


def test_torch_hub_download_fails_with_clear_message(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(Exception) as err:
        torch.hub.load_state_dict_from_url("https://download.pytorch.org/models/x.pth", progress=False)
    assert "network access is blocked" in str(err.value) or isinstance(
        getattr(err.value, "reason", None), NetworkBlockedError
    )


def test_child_processes_are_guarded_too():
    code = "import urllib.request; urllib.request.urlopen('http://example.com', timeout=20)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "network access is blocked" in result.stderr


def test_unblock_and_block_again():
    unblock_network()
    try:
        assert not network_blocked()
    finally:
        block_network()
    assert network_blocked()
    with pytest.raises(NetworkBlockedError):
        socket.getaddrinfo("example.com", 80)
