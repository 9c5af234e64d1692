"""Loaded by every Python a converter starts (this folder is put first on PYTHONPATH): no network.

onnx2tf downloads a sample image file to check its own output (3-channel image inputs of batch
<= 20) and to calibrate without data; edgecheck puts a placeholder of that file in its working
folder and always passes the spec's calibration data, and this guard makes sure nothing is fetched
even so: an attempt fails at once with a message that says why, instead of hanging or using other data.
"""

import socket

_NETWORK = (socket.AF_INET, socket.AF_INET6)
_MESSAGE = "network access is blocked while edgecheck runs a converter (nothing may be downloaded)"


def _refuse(*args, **kwargs):
    raise OSError(_MESSAGE)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guarded_connect(self, address):
    if self.family in _NETWORK:
        raise OSError(_MESSAGE)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in _NETWORK:
        raise OSError(_MESSAGE)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
