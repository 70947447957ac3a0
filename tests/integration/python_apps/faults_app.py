"""A Python deployment that fails on request, for the replica's failure tests."""

import os
import signal
import sys
import time

from haproxy_serve import serve


@serve.deployment
class Faults:
    def __init__(self):
        self.healthy = True

    def check_health(self):
        if not self.healthy:
            raise RuntimeError("told to be unhealthy")

    def __call__(self, request):
        path = request.url.path
        if path == "/faults/raise":
            raise ValueError("bad input 7")
        if path == "/faults/crash":
            os.kill(os.getpid(), signal.SIGKILL)
        if path == "/faults/hang":
            time.sleep(3)
            return "late"
        if path == "/faults/print":
            print("a line on stdout")
            print("a line on stderr", file=sys.stderr)
            return "printed"
        if path == "/faults/unhealthy":
            self.healthy = False
            return "now unhealthy"
        if path == "/faults/unserialisable":
            return {"thing": object()}
        return f"ok pid={os.getpid()}"


@serve.deployment
class BrokenInit:
    def __init__(self):
        raise RuntimeError("cannot load weights")


app = Faults.bind()
