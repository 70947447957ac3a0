#!/usr/bin/env python3
"""Soak and chaos driver for one haproxy-serve node (issue 15); the engine behind scripts/soak.sh.

Run it through scripts/soak.sh, which checks the binaries, makes the temp directory, exports the
node's RAY_SERVE_* environment and cleans up after this program. soak.sh's header comment is the
reference: what the node looks like, the load, the faults, and which fault may fail which request
(the same rules are coded in FaultWindow.allows below).

Python 3 standard library for everything but gRPC. The gRPC load uses grpcio and the KServe v2
messages tritonclient generates (tritonclient.grpc.service_pb2), from the interpreter or from
.tools/tritonclient, where scripts/setup.sh installs them. Without them it runs
build/bench/grpc_load in short slices instead.
"""

import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

CLIENT_TIMEOUT_S = 15.0  # every request's own deadline (the node's request_timeout_s is 10)
SLACK_S = 0.05  # clock tolerance when a failure is matched against a fault's window
STATUS_TIMEOUT_S = 3.0  # one GET /status or admin-socket command
FAULT_KINDS = ("replica_kill", "replica_stop", "haproxy_kill", "manager_kill", "deploy")
# Faults that may fail requests at all (soak.sh's header says which requests, exactly).
FAILING_KINDS = ("replica_kill", "replica_stop", "haproxy_kill")

T0 = time.monotonic()
T0_WALL = time.time()  # the same instant on the wall clock (the node's logs use local time)


def now():
    """Seconds since the driver started (monotonic)."""
    return time.monotonic() - T0


def wall(t):
    """Seconds since the start as local wall-clock time, as the node's logs print it."""
    stamp = T0_WALL + t
    return time.strftime("%H:%M:%S", time.localtime(stamp)) + f".{int(stamp % 1 * 1000):03d}"


def log(message):
    print(f"[soak {now():8.2f}s] {message}", flush=True)


# ---------------------------------------------------------------- the node's applications

# app -> (model name, HTTP route prefix). Replica counts and limits live in the two configs.
APPS = {"echo": ("echo", "/echo"), "digits": ("digits", "/digits"), "slow": ("slow", "/slow")}
# Applications whose replicas a deploy A <-> B replaces (their deployment settings differ).
ROLLED_BY_DEPLOY = {"digits"}


def write_config(path, http_port, grpc_port, models_dir, variant):
    """Writes serve config A or B. B scales `echo` 2 -> 3 and changes `digits`'
    max_ongoing_requests 16 -> 12 (a rolling replacement of both its replicas); `slow` is the
    same in both, so it must be left alone by every deploy."""
    echo_replicas = 2 if variant == "a" else 3
    digits_ongoing = 16 if variant == "a" else 12
    text = f"""# soak config {variant.upper()}, written by scripts/soak.py
http_options: {{host: 127.0.0.1, port: {http_port}, request_timeout_s: 10}}
grpc_options: {{port: {grpc_port}}}
applications:
  - name: echo
    route_prefix: /echo
    deployments:
      - name: noop
        num_replicas: {echo_replicas}
        max_ongoing_requests: 16
        max_queued_requests: -1
        graceful_shutdown_timeout_s: 5
        ray_actor_options: {{num_cpus: 0.5}}
        model: {{kind: noop, name: echo}}
        batching: {{max_batch_size: 8, batch_wait_timeout_s: 0.002}}
  - name: digits
    route_prefix: /digits
    deployments:
      - name: classifier
        num_replicas: 2
        max_ongoing_requests: {digits_ongoing}
        max_queued_requests: -1
        graceful_shutdown_timeout_s: 5
        ray_actor_options: {{num_cpus: 1}}
        model: {{kind: mlp, path: {json.dumps(models_dir + "/digits.safetensors")}, name: digits}}
        batching: {{max_batch_size: 8, batch_wait_timeout_s: 0.002}}
  - name: slow
    route_prefix: /slow
    deployments:
      - name: sleeper
        num_replicas: 2
        max_ongoing_requests: 4
        max_queued_requests: -1
        graceful_shutdown_timeout_s: 5
        ray_actor_options: {{num_cpus: 0.5}}
        model: {{kind: sleep, name: slow, sleep_ms: 100}}
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return {"echo": echo_replicas, "digits": 2, "slow": 2}


# ---------------------------------------------------------------- processes (ours only)


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def proc_stat(pid):
    """(state letter, ppid) from /proc/PID/stat, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], int(fields[1])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def ours(pid, workdir):
    """A process this run started: its command line names a file in our temp directory."""
    return (workdir + "/") in proc_cmdline(pid)


def our_processes(workdir):
    """pid -> command line of every live process whose command line names a file in our temp
    dir (this driver and its `timeout` parent name the directory itself, never a file in it)."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in (os.getpid(), os.getppid()):
            cmd = proc_cmdline(int(entry))
            if (workdir + "/") in cmd and alive(int(entry)):
                out[int(entry)] = cmd
    return out


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = proc_stat(int(entry))
            if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


# ---------------------------------------------------------------- talking to the node


class Node:
    """The node under test: its manager process, control API, admin socket and configs."""

    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir
        self.manager = None  # subprocess.Popen of the current manager
        self.manager_count = 0
        self.config_path = None  # the config in force
        self.expected = None  # app -> num_replicas of the config in force
        self.admin_socket = os.environ["RAY_SERVE_HAPROXY_SOCKET_PATH"]
        self.control_port = int(os.environ["RAY_SERVE_HAPROXY_CONTROL_PORT"])

    def start_manager(self, config_path, expected):
        self.manager_count += 1
        log_path = os.path.join(self.workdir, f"manager-{self.manager_count}.log")
        out = open(log_path, "wb")  # pylint: disable=consider-using-with
        self.manager = subprocess.Popen(  # pylint: disable=consider-using-with
            [self.args.manager_bin, "start", "--config", config_path],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # a Ctrl-C on the terminal is ours to handle, not its
        out.close()
        self.config_path = config_path
        self.expected = expected
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(log_path, "rb") as f:
                if b'"event":"ready"' in f.read():
                    return True, log_path
            if self.manager.poll() is not None:
                return False, log_path
            time.sleep(0.1)
        return False, log_path

    def kill_manager(self):
        pid = self.manager.pid
        os.kill(pid, signal.SIGKILL)
        self.manager.wait(timeout=10)
        return pid

    def status(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.control_port,
                                              timeout=STATUS_TIMEOUT_S)
            conn.request("GET", "/status")
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status != 200:
                return None
            return json.loads(body)
        except (OSError, http.client.HTTPException, ValueError):
            return None

    def admin(self, command):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(STATUS_TIMEOUT_S)
                s.connect(self.admin_socket)
                s.sendall(command.encode() + b"\n")
                chunks = []
                while True:
                    data = s.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
            return b"".join(chunks).decode("utf-8", "replace")
        except OSError:
            return None

    def server_states(self):
        """(backend, server) -> status column of `show stat`, or None."""
        text = self.admin("show stat")
        if not text or not text.startswith("# "):
            return None
        lines = text[2:].splitlines()
        header = lines[0].split(",")
        try:
            px, sv, st = header.index("pxname"), header.index("svname"), header.index("status")
        except ValueError:
            return None
        out = {}
        for line in lines[1:]:
            cols = line.split(",")
            if len(cols) > st:
                out[(cols[px], cols[sv])] = cols[st]
        return out

    def serving_replicas(self, status):
        """[(app, replica_id, pid)] of processes the supervisor shows serving."""
        return [(p["application"], p["replica_id"], p["pid"]) for p in status.get("processes", [])
                if p.get("state") == "serving" and p.get("pid", 0) > 0]

    def slot_of(self, status, app, replica_id):
        for a in status.get("applications", []):
            if a.get("name") == app:
                for s in a.get("slots", []):
                    if s.get("replica_id") == replica_id:
                        return a.get("backend"), s.get("slot")
        return None, None

    def converged(self, extra=None):
        """None when the node is what the config in force says, else why not. `extra(status)`
        may add a condition of its own (a reason, or None)."""
        if self.manager is None or self.manager.poll() is not None:
            return "the manager is not running"
        st = self.status()
        if st is None:
            return "no answer from GET /status"
        master = st.get("haproxy", {}).get("master_pid", 0)
        if not master or not alive(master):
            return f"HAProxy master {master} not running"
        if st.get("generation") != st.get("applied_generation"):
            return "a change is not applied yet"
        states = self.server_states()
        if states is None:
            return "no answer from the admin socket"
        procs = st.get("processes", [])
        for app, n in self.expected.items():
            ps = [p for p in procs if p.get("application") == app]
            if len(ps) != n or any(p.get("state") != "serving" for p in ps):
                return f"{app}: processes {[(p.get('pid'), p.get('state')) for p in ps]}, want " \
                       f"{n} serving"
            apps = [a for a in st.get("applications", []) if a.get("name") == app]
            if not apps:
                return f"{app}: not in status applications"
            slots = apps[0].get("slots", [])
            if len(slots) != n or any(s.get("state") != "active" for s in slots):
                return f"{app}: slots {[(s.get('slot'), s.get('state')) for s in slots]}, want " \
                       f"{n} active"
            ids = {p["replica_id"] for p in ps}
            if {s.get("replica_id") for s in slots} != ids:
                return f"{app}: slots and processes name different replicas"
            for s in slots:
                for proto in ("http", "grpc"):
                    v = states.get((f"{proto}-{app}", s.get("slot")))
                    if v != "UP":
                        return f"{proto}-{app}/{s.get('slot')} is {v} in HAProxy"
        for d in st.get("deployments", []):
            if d.get("state") != "running":
                return f"deployment {d.get('application')}: {d.get('state')} {d.get('message')}"
        # No stray process: every serve-replica of ours is one the status shows, and every
        # HAProxy of ours is the master or a descendant of it (workers, old workers).
        mine = our_processes(self.workdir)
        want = {p["pid"] for p in procs}
        stray = [pid for pid, cmd in mine.items() if "serve-replica" in cmd and pid not in want]
        if stray:
            return f"replica processes not in the status: {stray}"
        haproxies = {pid for pid, cmd in mine.items() if "haproxy -W" in cmd}
        stray = [pid for pid in haproxies if pid != master and (proc_stat(pid) or ("", 0))[1]
                 not in haproxies]
        if stray:
            return f"HAProxy processes outside master {master}: {stray}"
        return extra(st) if extra else None

    def wait_converged(self, bound_s, stop, extra=None):
        """Waits until converged() holds twice in a row, 0.2 s apart. Returns (ok, seconds until
        the first of those two checks, last reason)."""
        start = time.monotonic()
        passes = 0
        first_pass = start
        reason = "not checked"
        while True:
            checked_at = time.monotonic()
            reason = self.converged(extra)
            if reason is None:
                first_pass = checked_at if passes == 0 else first_pass
                passes += 1
            else:
                passes = 0
            if passes >= 2:
                return True, first_pass - start, None
            if time.monotonic() - start > bound_s or stop.is_set():
                return False, time.monotonic() - start, reason
            time.sleep(0.2)


# ---------------------------------------------------------------- KServe v2 messages


def encode_infer_request(pb, model, request_id, tensor_name, shape, values, raw):
    """A ModelInferRequest (tritonclient's generated KServe v2 messages) with one FP32 tensor,
    typed contents or raw_input_contents."""
    request = pb.ModelInferRequest(model_name=model, id=request_id)
    tensor = request.inputs.add(name=tensor_name, datatype="FP32", shape=shape)
    if raw:
        request.raw_input_contents.append(struct.pack(f"<{len(values)}f", *values))
    else:
        tensor.contents.fp32_contents.extend(values)
    return request


def decode_infer_response(response):
    """(model name, id, [(name, shape, [float])]) of a ModelInferResponse."""
    outputs = []
    for k, tensor in enumerate(response.outputs):
        if tensor.contents.fp32_contents:
            values = list(tensor.contents.fp32_contents)
        elif k < len(response.raw_output_contents):
            raw = response.raw_output_contents[k]
            values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        else:
            values = []
        outputs.append((tensor.name, list(tensor.shape), values))
    return response.model_name, response.id, outputs


# ---------------------------------------------------------------- requests and their answers


class Payloads:
    """Request bodies and the check of each answer."""

    def __init__(self, digits_json):
        with open(digits_json, encoding="utf-8") as f:
            self.samples = json.load(f)["heldout"]

    def make(self, app, rng):
        """(tensor name, shape, values, check(model, id, outputs) -> None or why wrong)."""
        model = APPS[app][0]
        if app == "digits":
            sample = rng.choice(self.samples)
            values = [float(v) for v in sample["inputs"]]
            want = sample["probabilities"]
            predicted = sample["predicted"]

            def check(got_model, _rid, outputs):
                if got_model != model:
                    return f"model_name {got_model!r}"
                if len(outputs) != 1:
                    return f"{len(outputs)} outputs"
                name, shape, data = outputs[0]
                if name != "probabilities" or list(shape) != [1, 10] or len(data) != 10:
                    return f"output {name} shape {shape}"
                if max(range(10), key=lambda i: data[i]) != predicted:
                    return f"argmax {max(range(10), key=lambda i: data[i])} != {predicted}"
                if max(abs(a - b) for a, b in zip(data, want)) > 1e-3:
                    return f"probabilities {data} differ from {want}"
                return None
            return "input", [1, 64], values, check
        values = [rng.randint(-400, 400) / 4 for _ in range(4)]

        def check(got_model, _rid, outputs):
            if got_model != model:
                return f"model_name {got_model!r}"
            if len(outputs) != 1:
                return f"{len(outputs)} outputs"
            name, shape, data = outputs[0]
            if name != "x" or list(shape) != [1, 4] or [float(v) for v in data] != values:
                return f"output {name} shape {shape} data {data}, sent {values}"
            return None
        return "x", [1, 4], values, check


class Recorder:
    """One load worker's results: counts in memory, every request on a CSV line."""

    def __init__(self, path, name):
        self.name = name
        self.file = open(path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
        self.file.write("start_s,end_s,app,protocol,outcome,requests,detail\n")
        self.sent = 0
        self.ok = 0
        self.failures = []  # dicts

    def add(self, start, end, app, proto, outcome, detail="", requests=1, ok=None,
            answered=False):
        """One request, or (grpc_load slices) `requests` requests of which `ok` succeeded and the
        rest failed with `outcome`. `answered`: the failure is an answer of the node (an HTTP
        status, a gRPC status HAProxy or a replica sent, a wrong body), not a lost connection."""
        ok = (requests if outcome == "ok" else 0) if ok is None else ok
        self.sent += requests
        self.ok += ok
        detail = detail.replace("\n", " ").replace(",", ";")[:300]
        self.file.write(f"{start:.4f},{end:.4f},{app},{proto},{outcome},{requests},{detail}\n")
        if requests - ok > 0:
            self.failures.append({"start": start, "end": end, "app": app, "protocol": proto,
                                  "cause": outcome, "count": requests - ok, "detail": detail,
                                  "answered": answered, "worker": self.name})

    def close(self):
        self.file.close()


def http_worker(rec, app, port, payloads, seed, think_s, stop):
    rng = random.Random(seed)
    model, prefix = APPS[app]
    n = 0
    while not stop.is_set():
        n += 1
        rid = f"{rec.name}-{n}"
        name, shape, values, check = payloads.make(app, rng)
        body = json.dumps({"id": rid, "inputs": [
            {"name": name, "shape": shape, "datatype": "FP32", "data": values}]})
        path = prefix if n % 2 else f"/v2/models/{model}/infer"
        start = now()
        outcome, detail = "ok", ""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT_S)
        try:
            # A fresh connection per request (Connection: close): a failure is always the node's,
            # never a client that sent on a keep-alive connection the server was closing.
            conn.request("POST", path, body=body, headers={
                "Content-Type": "application/json", "Connection": "close"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                outcome = f"http status {resp.status}"
                detail = data[:200].decode("utf-8", "replace")
            else:
                try:
                    reply = json.loads(data)
                    why = None if reply.get("id") == rid else f"id {reply.get('id')!r} != {rid}"
                    why = why or check(reply.get("model_name"), reply.get("id"),
                                       [(o.get("name"), o.get("shape"), o.get("data") or [])
                                        for o in reply.get("outputs", [])])
                except (ValueError, AttributeError, TypeError) as e:
                    why = f"not KServe JSON: {e}"
                if why:
                    outcome, detail = "wrong body", f"{path}: {why}"
        except ConnectionRefusedError as e:
            outcome, detail = "connect refused", str(e)
        except (socket.timeout, TimeoutError) as e:
            outcome, detail = "timeout", str(e)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                http.client.IncompleteRead, http.client.BadStatusLine) as e:
            outcome, detail = "reset", f"{type(e).__name__}: {e}"
        except (OSError, http.client.HTTPException) as e:
            outcome, detail = "reset", f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        rec.add(start, now(), app, "http", outcome, detail,
                answered=outcome.startswith("http status") or outcome == "wrong body")
        stop.wait(think_s)


def node_answer(details):
    """Whether a gRPC error's message is one the node wrote (HAProxy's own gRPC answers and the
    replica's all name the replica or the application), not one of the client's transport."""
    return "replica" in details or "application" in details


def grpc_worker(grpc_mods, rec, app, port, payloads, seed, think_s, stop):
    grpc, pb = grpc_mods
    rng = random.Random(seed)
    model = APPS[app][0]
    options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
               ("grpc.max_reconnect_backoff_ms", 1000), ("grpc.enable_retries", 0)]
    channel = None
    n = 0
    while not stop.is_set():
        if channel is None:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                       request_serializer=pb.ModelInferRequest.SerializeToString,
                                       response_deserializer=pb.ModelInferResponse.FromString)
        n += 1
        rid = f"{rec.name}-{n}"
        name, shape, values, check = payloads.make(app, rng)
        request = encode_infer_request(pb, model, rid, name, shape, values, raw=bool(n % 2))
        start = now()
        outcome, detail = "ok", ""
        try:
            reply = call(request, timeout=CLIENT_TIMEOUT_S, metadata=(("application", app),))
            try:
                got_model, got_id, outputs = decode_infer_response(reply)
                why = None if got_id == rid else f"id {got_id!r} != {rid}"
                why = why or check(got_model, got_id, outputs)
            except (ValueError, IndexError, struct.error) as e:
                why = f"not a ModelInferResponse: {e}"
            if why:
                outcome, detail = "wrong body", why
        except grpc.RpcError as e:
            outcome = f"grpc code {e.code().name}"
            detail = e.details() or ""
            # Start over with a new channel, so that a channel waiting out its reconnect backoff
            # after an HAProxy restart does not fail calls the node could serve.
            channel.close()
            channel = None
        rec.add(start, now(), app, "grpc", outcome, detail,
                answered=outcome == "wrong body" or node_answer(detail))
        stop.wait(think_s)
    if channel is not None:
        channel.close()


def grpc_load_worker(rec, app, port, binary, slice_s, pause_s, stop, procs, lock):
    """Fallback without Python gRPC: grpc_load (closed loop, 1 call in flight) for `slice_s`,
    then a pause; each slice is one record with its time span and its failures by code."""
    model = APPS[app][0]
    while not stop.is_set():
        start = now()
        cmd = [binary, "--target", f"127.0.0.1:{port}", "--model", model, "--application", app,
               "--concurrency", "1", "--duration", str(slice_s), "--timeout", str(CLIENT_TIMEOUT_S)]
        with lock:
            if stop.is_set():
                break
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            procs.add(p)
        try:
            out, err = p.communicate(timeout=slice_s + CLIENT_TIMEOUT_S + 15)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        with lock:
            procs.discard(p)
        end = now()
        if p.returncode < 0 and stop.is_set():
            break  # cut short by the end of the run (or an interrupt): not the node's doing
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        result = [ln for ln in out.splitlines() if ln.startswith("result ")]
        # grpc_load prints the first message of each failure code: "grpc_load: CODE, first
        # message: ...", and for a failed probe "probe call to T failed: CODE: message".
        messages = {}
        for line in err.splitlines():
            if ", first message: " in line and line.startswith("grpc_load: "):
                code, msg = line[len("grpc_load: "):].split(", first message: ", 1)
                messages[code] = msg
            elif "probe call" in line and " failed: " in line:
                code, _, msg = line.split(" failed: ", 1)[1].partition(": ")
                messages[code] = msg
        if result:
            kv = dict(f.split("=", 1) for f in result[0].split()[1:] if "=" in f)
            rec.add(start, end, app, "grpc", "ok", "grpc_load slice", requests=int(kv.get("ok", 0)))
            codes = kv.get("errors_by_code", "-")
            for item in codes.split(",") if codes != "-" else []:
                code, count = item.split(":")
                cause = "wrong body" if code == "BAD_REPLY" else f"grpc code {code}"
                msg = messages.get(code, "")
                rec.add(start, end, app, "grpc", cause, f"grpc_load slice: {msg}",
                        requests=int(count), ok=0,
                        answered=code == "BAD_REPLY" or node_answer(msg))
        elif messages:  # the probe call failed (exit 2): one failed call
            code, msg = next(iter(messages.items()))
            rec.add(start, end, app, "grpc", f"grpc code {code}", f"grpc_load probe: {msg}",
                    requests=1, ok=0, answered=node_answer(msg))
        else:
            rec.add(start, end, app, "grpc", f"grpc_load exit {p.returncode}", err[-200:],
                    requests=1, ok=0)
        stop.wait(pause_s)


# ---------------------------------------------------------------- faults


class FaultWindow:
    """One injected fault: when it began, until when it may fail requests, and convergence."""

    def __init__(self, kind, variant="", app=None):
        self.kind = kind
        self.variant = variant
        self.app = app
        self.t0 = now()  # just before the fault was injected
        self.t1 = None  # just after the injection (kill sent, deploy answered, ...)
        self.allowed_until = None  # requests starting after this may not fail because of it
        self.converged = None
        self.converge_s = None
        self.converged_at = None  # when the convergence wait ended (converged or not)
        self.detail = ""
        self.problem = ""  # a broken promise found while injecting (besides convergence)
        self.before = None  # manager_kill: (HAProxy master pid, replica pids) before the kill
        self.extra_check = None  # a convergence condition of this fault's own
        self.failures = {}  # cause -> requests this fault explains

    def allows(self, f):
        """Whether this fault may have failed failure record `f` (see soak.sh's header)."""
        if self.kind not in FAILING_KINDS or self.allowed_until is None:
            return False
        if self.kind in ("replica_kill", "replica_stop") and f["app"] != self.app:
            return False
        if self.kind == "haproxy_kill" and f["answered"]:
            return False  # a restarted HAProxy must route as the killed one did
        return f["start"] <= self.allowed_until + SLACK_S and f["end"] >= self.t0 - SLACK_S

    def as_json(self):
        return {"kind": self.kind, "variant": self.variant, "app": self.app,
                "t0": round(self.t0, 3), "t0_wall": wall(self.t0), "t1": round(self.t1 or 0, 3),
                "allowed_until": None if self.allowed_until is None else
                round(self.allowed_until, 3),
                "converged": self.converged, "converge_s": None if self.converge_s is None else
                round(self.converge_s, 3), "detail": self.detail, "problem": self.problem}


class Chaos:
    def __init__(self, node, args, rng, stop, configs):
        self.node = node
        self.args = args
        self.rng = rng
        self.stop = stop
        self.configs = configs  # [(path, expected)] for configs A and B
        self.deployed = 0  # index of the config in force
        self.faults = []
        self.stopped_pids = set()  # replicas under SIGSTOP right now (cleanup sends SIGCONT)

    def pick_replica(self):
        st = self.node.status()
        if st is None:
            return None, None
        reps = [r for r in self.node.serving_replicas(st) if ours(r[2], self.node.workdir)]
        if not reps:
            return None, None
        return st, self.rng.choice(sorted(reps))

    def inject(self, kind):
        handler = getattr(self, "do_" + kind)
        w = handler()
        if w is None:
            return None
        self.faults.append(w)
        ok, secs, reason = self.node.wait_converged(self.args.converge_timeout, self.stop,
                                                    w.extra_check)
        w.converged = ok
        w.converge_s = secs
        w.converged_at = now()
        if w.kind == "haproxy_kill":
            # HAProxy may fail requests until the node serves again, or for as long as the bound.
            w.allowed_until = now()
        if not ok:
            w.problem = (w.problem + "; " if w.problem else "") + \
                f"not converged within {self.args.converge_timeout:g} s: {reason}"
        if w.kind == "manager_kill" and ok:
            self.check_adoption(w)
        log(f"fault {w.kind}{'/' + w.variant if w.variant else ''}"
            f"{' ' + w.app if w.app else ''}: {w.detail}; "
            + (f"converged in {secs:.2f} s" if ok else f"NOT converged: {reason}")
            + (f"; PROBLEM: {w.problem}" if w.problem else ""))
        return w

    def do_replica_kill(self):
        _, rep = self.pick_replica()
        if rep is None:
            return None
        app, rid, pid = rep
        w = FaultWindow("replica_kill", app=app)
        os.kill(pid, signal.SIGKILL)
        w.t1 = now()
        w.allowed_until = w.t1  # only the requests it held when it died
        w.detail = f"SIGKILL replica {rid} pid {pid}"
        return w

    def do_replica_stop(self):
        st, rep = self.pick_replica()
        if rep is None:
            return None
        app, rid, pid = rep
        backend, slot = self.node.slot_of(st, app, rid)
        hold = self.rng.uniform(1.5, 5.0)
        w = FaultWindow("replica_stop", variant=f"{hold:.1f}s", app=app)
        self.stopped_pids.add(pid)
        os.kill(pid, signal.SIGSTOP)
        w.t1 = now()
        down_at = None
        try:
            while now() < w.t1 + hold and not self.stop.is_set():
                if down_at is None and backend:
                    states = self.node.server_states() or {}
                    if states.get((backend, slot), "").startswith("DOWN"):
                        down_at = now()
                time.sleep(0.05)
        finally:
            os.kill(pid, signal.SIGCONT)
            self.stopped_pids.discard(pid)
        cont_at = now()
        # It may fail requests sent to it until HAProxy marked it down (or it was continued).
        w.allowed_until = down_at if down_at is not None else cont_at
        w.detail = (f"SIGSTOP replica {rid} pid {pid} for {cont_at - w.t1:.2f} s; "
                    + (f"{backend}/{slot} DOWN after {down_at - w.t1:.2f} s" if down_at else
                       f"{backend}/{slot} not marked DOWN before SIGCONT"))
        return w

    def do_haproxy_kill(self):
        st = self.node.status()
        if st is None:
            return None
        master = st.get("haproxy", {}).get("master_pid", 0)
        if not master or not alive(master) or not ours(master, self.node.workdir):
            return None
        workers = [p for p in children(master) if ours(p, self.node.workdir)]
        variant = self.rng.choice(["master", "worker", "master+worker"])
        if not workers and variant != "master":
            variant = "master"
        targets = ([master] if "master" in variant else []) + \
            ([self.rng.choice(workers)] if "worker" in variant else [])
        w = FaultWindow("haproxy_kill", variant=variant)
        for pid in targets:
            os.kill(pid, signal.SIGKILL)
        w.t1 = now()
        w.detail = f"SIGKILL {variant} {targets}"
        return w

    def do_manager_kill(self):
        st = self.node.status()
        if st is None:
            return None
        w = FaultWindow("manager_kill")
        before_master = st.get("haproxy", {}).get("master_pid", 0)
        before = sorted(p.get("pid") for p in st.get("processes", []))
        old = self.node.kill_manager()
        w.t1 = now()
        gap = self.rng.uniform(0.5, 3.0)
        self.stop.wait(gap)
        path, expected = self.configs[self.deployed]
        ok, log_path = self.node.start_manager(path, expected)
        w.detail = (f"SIGKILL manager {old}, successor {self.node.manager.pid} started after "
                    f"{gap:.1f} s ({os.path.basename(log_path)})")
        w.before = (before_master, before)
        if not ok:
            w.problem = f"the successor manager did not report ready (see {log_path})"
        return w

    def check_adoption(self, w):
        st = self.node.status() or {}
        master = st.get("haproxy", {}).get("master_pid", 0)
        pids = sorted(p.get("pid") for p in st.get("processes", []))
        if (master, pids) != w.before:
            w.problem = (f"the successor did not adopt the node as it was: HAProxy master "
                         f"{w.before[0]} -> {master}, replicas {w.before[1]} -> {pids}")

    def do_deploy(self):
        target = 1 - self.deployed
        path, expected = self.configs[target]
        w = FaultWindow("deploy", variant="AB"[target])
        # The configs differ in digits' max_ongoing_requests, so every digits replica running
        # now must be replaced (one at a time) before the deploy has converged.
        st = self.node.status() or {}
        old = {p.get("replica_id") for p in st.get("processes", [])
               if p.get("application") in ROLLED_BY_DEPLOY}

        def retired(status):
            left = sorted(p.get("replica_id") for p in status.get("processes", [])
                          if p.get("replica_id") in old)
            return f"replicas of the old config still running: {left}" if left else None
        w.extra_check = retired
        try:
            p = subprocess.run([self.args.manager_bin, "deploy", path], capture_output=True,
                               timeout=90, check=False, stdin=subprocess.DEVNULL)
            rc, out = p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace").strip()
        except subprocess.TimeoutExpired:
            rc, out = -1, "haproxy-manager deploy did not return within 90 s"
        w.t1 = now()
        if rc == 0:
            self.deployed = target
            self.node.config_path, self.node.expected = path, expected
            try:
                reply = json.loads(out)
                w.detail = f"deploy config {'AB'[target]}: action {reply.get('action')} " \
                           f"{reply.get('reasons') or ''}".strip()
            except ValueError:
                w.detail = f"deploy config {'AB'[target]}: {out[:200]}"
        else:
            w.detail = f"deploy config {'AB'[target]} failed"
            w.problem = f"haproxy-manager deploy exited {rc}: {out[:500]}"
        return w


# ---------------------------------------------------------------- the run


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        value, unit = text[:-1], units[text[-1]]
    else:
        value, unit = text, 1
    try:
        secs = float(value) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 90s, 30m)") from None
    if not 0 < secs <= 7 * 86400 or not math.isfinite(secs):
        raise argparse.ArgumentTypeError(f"duration {text!r} out of range")
    return secs


def find_grpc(root, mode):
    """(grpc, service_pb2): grpcio and tritonclient's generated KServe v2 messages, from the
    system or the tritonclient that scripts/setup.sh puts in .tools/; None when either is
    missing (then grpc_load slices are used)."""
    if mode == "grpc_load":
        return None
    tools = os.path.join(root, ".tools", "tritonclient")
    if os.path.isdir(tools) and tools not in sys.path:
        sys.path.append(tools)
    try:
        import grpc  # pylint: disable=import-outside-toplevel
        from tritonclient.grpc import service_pb2  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return grpc, service_pb2


def summarize(values):
    if not values:
        return {}
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


class SetupError(Exception):
    """The node could not be brought up: no verdict on it."""


def main():
    ap = argparse.ArgumentParser(description="soak and chaos driver (use scripts/soak.sh)")
    ap.add_argument("duration", type=parse_duration)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--manager-bin", required=True)
    ap.add_argument("--grpc-load-bin", required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--converge-timeout", type=float, default=45.0)
    ap.add_argument("--interval", default="1.5,6", help="MIN,MAX seconds between faults")
    ap.add_argument("--faults", default=",".join(FAULT_KINDS),
                    help="comma-separated fault kinds to choose from (none: load only)")
    ap.add_argument("--think-ms", type=float, default=20.0,
                    help="pause of each load worker between requests")
    ap.add_argument("--grpc-client", choices=("auto", "grpc_load"), default="auto")
    ap.add_argument("--drain-timeout", type=float, default=CLIENT_TIMEOUT_S + 10)
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    rng = random.Random(seed)
    kinds = [k for k in args.faults.split(",") if k and k != "none"]
    for k in kinds:
        if k not in FAULT_KINDS:
            ap.error(f"unknown fault kind {k!r}; known: {', '.join(FAULT_KINDS)}")
    lo, hi = (float(x) for x in args.interval.split(","))
    log(f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(T0_WALL))} (0.00s); "
        f"times below are seconds since then")
    log(f"seed {seed} (rerun the same fault sequence with --seed {seed}); "
        f"duration {args.duration:g} s; faults {', '.join(kinds) or 'none'}; "
        f"work dir {args.workdir}")

    stop_all = threading.Event()
    interrupted = []

    def on_signal(signum, _frame):
        if not interrupted:
            log(f"signal {signum}: stopping early")
        interrupted.append(signum)
        stop_all.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    node = Node(args)
    configs = []
    for variant in ("a", "b"):
        path = os.path.join(args.workdir, f"serve-{variant}.yaml")
        expected = write_config(path, args.http_port, args.grpc_port,
                                os.path.join(args.root, "models"), variant)
        configs.append((path, expected))
    payloads = Payloads(os.path.join(args.root, "models", "digits.json"))
    grpc = find_grpc(args.root, args.grpc_client)
    if grpc is None and not os.access(args.grpc_load_bin, os.X_OK):
        log(f"no Python grpc module and no {args.grpc_load_bin}: build it with "
            "`cmake --build build --target grpc_load` or run scripts/setup.sh")
        return 2
    grpc_mode = f"python grpc {grpc[0].__version__}" if grpc else "build/bench/grpc_load slices"
    log(f"gRPC load: {grpc_mode}")

    chaos = Chaos(node, args, rng, stop_all, configs)
    recorders = []
    threads = []
    load_stop = threading.Event()
    grpc_procs = set()
    grpc_lock = threading.Lock()
    violations = []  # broken promises that are not a request's failure
    setup_error = None
    load_start = load_end = None
    final = None

    try:
        ok, log_path = node.start_manager(*configs[0])
        if not ok:
            with open(log_path, "rb") as f:
                tail = f.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise SetupError(f"the manager did not start; the end of {log_path}:\n  "
                             + "\n  ".join(tail))
        log(f"manager {node.manager.pid} ready; waiting for every replica to serve")
        ok, secs, reason = node.wait_converged(120, stop_all)
        if not ok:
            raise SetupError(f"the node did not come up within 120 s: {reason}")
        log(f"node serving after {secs:.1f} s: {json.dumps(node.expected)}")

        think = args.think_ms / 1000
        plan = [("http", "echo"), ("http", "echo"), ("http", "digits"), ("http", "slow"),
                ("grpc", "echo"), ("grpc", "digits"), ("grpc", "slow")]
        if grpc is None:  # grpc_load checks echo replies only: the noop and sleep models
            plan = [p for p in plan if not (p[0] == "grpc" and p[1] == "digits")]
        for i, (proto, app) in enumerate(plan):
            name = f"{proto}-{app}-{i}"
            rec = Recorder(os.path.join(args.workdir, f"requests-{name}.csv"), name)
            recorders.append(rec)
            if proto == "http":
                target = (http_worker, (rec, app, args.http_port, payloads, seed * 100 + i,
                                        think, load_stop))
            elif grpc is not None:
                target = (grpc_worker, (grpc, rec, app, args.grpc_port, payloads,
                                        seed * 100 + i, think, load_stop))
            else:
                target = (grpc_load_worker, (rec, app, args.grpc_port, args.grpc_load_bin, 1.0,
                                             2.0, load_stop, grpc_procs, grpc_lock))
            threads.append(threading.Thread(target=target[0], args=target[1], name=name,
                                            daemon=True))
        load_start = now()
        for t in threads:
            t.start()
        log(f"load: {len(threads)} workers ({', '.join(t.name for t in threads)}), "
            f"{args.think_ms:g} ms between requests each")

        deadline = load_start + args.duration
        stop_all.wait(min(3.0, args.duration / 4))  # steady load before the first fault
        while kinds and not stop_all.is_set() and now() < deadline:
            kind = rng.choice(kinds)
            w = chaos.inject(kind)
            if stop_all.is_set():
                break
            if w is not None and not w.converged:
                log("the node did not converge: no more faults; ending the run")
                break
            stop_all.wait(max(0.0, min(rng.uniform(lo, hi), deadline - now())))
        if not stop_all.is_set() and now() < deadline and (
                not chaos.faults or chaos.faults[-1].converged):
            stop_all.wait(deadline - now())
        load_end = now()
        log("load stopping" if not interrupted else "interrupted")
    except SetupError as e:
        setup_error = str(e)
    finally:
        # Drain: no new request; every worker finishes the one it has in flight (bounded).
        load_stop.set()
        drain_deadline = time.monotonic() + args.drain_timeout
        for t in threads:
            t.join(max(0.0, drain_deadline - time.monotonic()))
        with grpc_lock:  # grpc_load slices end by themselves; these overran the drain
            for p in grpc_procs:
                p.kill()
        hung = [t.name for t in threads if t.is_alive()]
        if hung:
            violations.append(f"load workers still waiting after the {args.drain_timeout:g} s "
                              f"drain: {hung}")
        for rec, t in zip(recorders, threads):
            if not t.is_alive():
                rec.close()
        for pid in list(chaos.stopped_pids):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        if load_start is not None and not interrupted and setup_error is None:
            ok, secs, reason = node.wait_converged(args.converge_timeout, stop_all)
            final = {"converged": ok, "seconds": round(secs, 3), "reason": reason}
            if not ok:
                violations.append(f"the node is not converged at the end: {reason}")
        stop_report = stop_node(node, args.workdir)
        if stop_report:
            violations.append(stop_report)

    if setup_error:
        log("SETUP FAILED: " + setup_error)
        return 2
    return report(args, seed, grpc_mode, recorders, chaos, violations, final, load_start,
                  load_end, interrupted)


def stop_node(node, workdir):
    """SIGTERM the manager (it drains and stops everything it runs), bounded; then SIGKILL
    whatever of ours is left. Returns a complaint if something outlived the manager."""
    complaint = None
    if node.manager is not None and node.manager.poll() is None:
        log(f"stopping the node: SIGTERM to manager {node.manager.pid}")
        node.manager.terminate()
        try:
            node.manager.wait(timeout=60)
        except subprocess.TimeoutExpired:
            complaint = "the manager did not stop within 60 s of SIGTERM"
            node.manager.kill()
            node.manager.wait(timeout=10)
    # The manager stops HAProxy and its replicas before it exits; allow old processes a moment.
    deadline = time.monotonic() + 10
    left = our_processes(workdir)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = our_processes(workdir)
    if left:
        if complaint is None and node.manager is not None and node.manager.returncode == 0:
            complaint = ("processes left running after the manager stopped: "
                         + "; ".join(f"{pid} {cmd[:120]}" for pid, cmd in left.items()))
        for pid in left:
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return complaint


def context_of(f, faults):
    """Where an unexplained failure happened relative to the faults, for the report."""
    last = None
    for w in faults:
        end = w.converged_at if w.converged_at is not None else now()
        if f["start"] <= end and f["end"] >= w.t0:
            return f"during {w.kind} at {w.t0:.2f}s"
        if w.t0 <= f["start"]:
            last = w
    if last is None:
        return "before any fault"
    return f"{f['start'] - last.converged_at:.1f} s after {last.kind} at {last.t0:.2f}s converged"


def report(args, seed, grpc_mode, recorders, chaos, violations, final, load_start, load_end,
           interrupted):
    failures = [f for rec in recorders for f in rec.failures]
    failures.sort(key=lambda f: f["start"])
    sent = {"http": 0, "grpc": 0}
    okc = {"http": 0, "grpc": 0}
    for rec in recorders:
        proto = rec.name.split("-")[0]
        sent[proto] += rec.sent
        okc[proto] += rec.ok
    by_cause = {}
    explained_by_kind = {}  # fault kind -> {cause: requests}
    unexplained_by_context = {}  # "during deploy: http: http status 503" -> requests
    explained = unexplained = 0
    for f in failures:
        f["explained_by"] = None
        key = f"{f['protocol']}: {f['cause']}"
        by_cause[key] = by_cause.get(key, 0) + f["count"]
        for w in chaos.faults:
            if w.allows(f):
                f["explained_by"] = f"{w.kind} at {w.t0:.2f}s"
                w.failures[key] = w.failures.get(key, 0) + f["count"]
                kind = explained_by_kind.setdefault(w.kind, {})
                kind[key] = kind.get(key, 0) + f["count"]
                break
        if f["explained_by"]:
            explained += f["count"]
        else:
            unexplained += f["count"]
            f["context"] = context_of(f, chaos.faults)
            where = f["context"].split(" at ")[0] if f["context"].startswith("during") else \
                "outside every fault window"
            key2 = f"{where}: {key}"
            unexplained_by_context[key2] = unexplained_by_context.get(key2, 0) + f["count"]
    faults = {}
    for w in chaos.faults:
        e = faults.setdefault(w.kind, {"count": 0, "converge_s": [], "not_converged": 0,
                                       "problems": 0, "failed_requests": 0})
        e["count"] += 1
        e["failed_requests"] += sum(w.failures.values())
        if w.converged:
            e["converge_s"].append(w.converge_s)
        else:
            e["not_converged"] += 1
        if w.problem:
            e["problems"] += 1
    problems = [w for w in chaos.faults if w.problem]
    with open(os.path.join(args.workdir, "faults.jsonl"), "w", encoding="utf-8") as out:
        for w in chaos.faults:
            out.write(json.dumps(dict(w.as_json(), failures=w.failures)) + "\n")
    with open(os.path.join(args.workdir, "failures.jsonl"), "w", encoding="utf-8") as out:
        for f in failures:
            out.write(json.dumps(dict(f, start_wall=wall(f["start"]))) + "\n")

    passed = unexplained == 0 and not problems and not violations and not interrupted
    ran = (load_end or now()) - (load_start or now())
    print()
    print("==================== soak summary ====================")
    print(f"seed {seed}; {ran:.1f} s of load (asked {args.duration:g} s); gRPC client: {grpc_mode}")
    print("requests:")
    for proto in ("http", "grpc"):
        print(f"  {proto:4}: {sent[proto]:7d} sent, {okc[proto]:7d} ok, "
              f"{sent[proto] - okc[proto]:5d} failed")
    if by_cause:
        print("failed, by cause:")
        for k, v in sorted(by_cause.items()):
            print(f"  {k}: {v}")
    print(f"failures explained by a fault window: {explained}; UNEXPLAINED: {unexplained}")
    for k, v in sorted(unexplained_by_context.items()):
        print(f"  UNEXPLAINED {k}: {v}")
    print("faults (convergence: seconds from the end of the injection to a converged node):")
    for kind in FAULT_KINDS:
        if kind in faults:
            e = faults[kind]
            c = summarize(e["converge_s"])
            conv = f"converged in {c['min']:.2f} / {c['median']:.2f} / {c['max']:.2f} s " \
                   f"(min / median / max)" if c else "none converged"
            print(f"  {kind:13} x{e['count']:<3d} {conv}; not converged: {e['not_converged']}; "
                  f"problems: {e['problems']}; requests failed in its windows: "
                  f"{e['failed_requests']}")
            for cause, n in sorted(explained_by_kind.get(kind, {}).items()):
                print(f"  {'':13}      {cause}: {n}")
    if not chaos.faults:
        print("  none")
    if final:
        print(f"final convergence: {'ok' if final['converged'] else 'FAILED'} "
              f"({final['seconds']} s{'; ' + final['reason'] if final['reason'] else ''})")
    for w in problems:
        print(f"PROBLEM at {w.t0:.2f}s ({w.kind} {w.variant} {w.app or ''}): {w.problem}")
    for v in violations:
        print(f"PROBLEM: {v}")
    shown = 0
    for f in failures:
        if f["explained_by"]:
            continue
        if shown >= 50:
            print(f"  ... more in {os.path.join(args.workdir, 'failures.jsonl')}")
            break
        shown += 1
        print(f"UNEXPLAINED {f['start']:8.3f}-{f['end']:8.3f}s ({wall(f['start'])}) "
              f"{f['protocol']:4} {f['app']:6} "
              f"x{f['count']} {f['cause']} ({f['context']})"
              + (f": {f['detail'][:160]}" if f["detail"] else ""))
    verdict = "INTERRUPTED (no verdict)" if interrupted else "PASS" if passed else "FAIL"
    print(f"result: {verdict}")
    summary = {
        "soak": "haproxy-serve", "seed": seed,
        "result": "interrupted" if interrupted else "pass" if passed else "fail",
        "duration_s": round(ran, 3), "grpc_client": grpc_mode,
        "requests": {p: {"sent": sent[p], "ok": okc[p], "failed": sent[p] - okc[p]}
                     for p in sent},
        "failed_by_cause": by_cause, "explained": explained, "unexplained": unexplained,
        "unexplained_by_context": unexplained_by_context,
        "explained_by_fault": explained_by_kind,
        "faults": {k: {"count": e["count"], "not_converged": e["not_converged"],
                       "problems": e["problems"], "failed_requests": e["failed_requests"],
                       "converge_s": summarize(e["converge_s"])}
                   for k, e in faults.items()},
        "problems": [w.problem for w in problems] + violations,
        "final_convergence": final, "interrupted": bool(interrupted),
    }
    print(json.dumps(summary, sort_keys=True))
    if interrupted:
        return 130
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
