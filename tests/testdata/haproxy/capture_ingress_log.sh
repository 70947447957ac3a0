#!/bin/bash
# Regenerates ingress_log_<label>.txt in this directory: the verbatim datagrams that HAProxy sends
# to the ingress log socket (one per line; each ends in "\n"), which
# tests/unit/haproxy-manager/ingress/ingress_log_parser_test.cc parses and asserts exactly.
# The `log`, `log-format` and `option dontlognull` lines are taken from the shipped template, so
# the capture follows it. Needs python3 and curl (with HTTP/2). Ports 18201-18203 on 127.0.0.1
# must be free. Usage: capture_ingress_log.sh <haproxy binary> <version label, e.g. 2.6>
set -euo pipefail
bin=$1
v=$2
out=$(cd "$(dirname "$0")" && pwd)
template="$out/../../../templates/haproxy.cfg.mustache"
dir=/tmp/haproxy-ingress-capture-$v
rm -rf "$dir" && mkdir -p "$dir"
sock=$dir/ingress.sock
log_lines=$(grep -E '^  (log |log-format |option dontlognull)' "$template" |
  sed "s|{{ingress_log_socket}}|$sock|")

# The receiver: every datagram appended verbatim, until it is killed.
python3 - "$sock" "$dir/datagrams" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "wb", buffering=0) as f:
    while True:
        f.write(s.recv(65536))
PY
receiver=$!
# A "replica" that accepts and never answers, for the client-abort case.
python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18203)); s.listen(16); held = []
while True: held.append(s.accept()); time.sleep(0.01)' &
silent=$!

cat >"$dir/haproxy.cfg" <<CFG
global
    stats socket $dir/admin.sock mode 600 level admin expose-fd listeners
    hard-stop-after 5s

defaults
    mode http
    option abortonclose
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend http
    bind 127.0.0.1:18201
$log_lines
    acl healthz path /-/healthz
    http-request set-var(txn.route) path if healthz
    http-request return status 200 content-type text/plain string "success" if healthz
    http-request set-var(txn.backend) str(http-digits) if { path_beg /digits }
    http-request set-var(txn.route) str(/digits) if { path_beg /digits }
    http-request set-var(txn.backend) str(http-empty) if { path_beg /empty }
    http-request set-var(txn.route) str(/empty) if { path_beg /empty }
    http-request set-var(txn.backend) str(http-silent) if { path_beg /v2/models/silent/ }
    http-request set-var(txn.route) str(/v2/models/silent) if { path_beg /v2/models/silent/ }
    use_backend %[var(txn.backend)] if { var(txn.backend) -m found }
    default_backend not_found

backend not_found
    http-request return status 404 content-type text/plain string "not found"

backend http-digits
    server slot1 127.0.0.1:18202

backend http-empty
    http-request return status 503 content-type text/plain string "no replica" if { nbsrv(http-empty) eq 0 }
    server-template slot 1-2 127.0.0.1:1 disabled

backend http-silent
    server slot1 127.0.0.1:18203

frontend origin
    bind 127.0.0.1:18202
    http-request return status 200 content-type text/plain string "origin"
CFG
"$bin" -c -f "$dir/haproxy.cfg" >/dev/null 2>&1
setsid "$bin" -W -S "$dir/master.sock,mode,600" -f "$dir/haproxy.cfg" >>"$dir/stdout.log" \
  2>>"$dir/stderr.log" &
master_pid=$!
trap 'kill -TERM $master_pid $receiver $silent 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -S "$dir/admin.sock" ] && break; sleep 0.1; done
sleep 0.3

url=http://127.0.0.1:18201
q() { curl -s -o /dev/null "$@" || true; sleep 0.05; }  # one request, in order
q -X POST -d '{}' "$url/digits"                             # routed, 200
q "$url/digits/sub/path?x=1"                                # routed below the prefix
q "$url/nothing/here"                                       # HAProxy's 404
q "$url/-/healthz"                                          # HAProxy's own answer
q "$url/empty"                                              # 503: no replica
q -X 'PURGE|#1' "$url/digits"                               # a client's own method: '#' as #23
q --http2-prior-knowledge "$url/digits"                     # HTTP/2
q --http2-prior-knowledge -X 'A B' "$url/digits"            # HTTP/2, refused method: status 0
q -m 0.5 "$url/v2/models/silent/infer"                      # the client gives up: C...
python3 -c '                                                 # a request that is not HTTP
import socket; c = socket.create_connection(("127.0.0.1", 18201))
c.sendall(b"G\"ET / HTTP/1.1\r\nHost: x\r\n\r\n"); c.settimeout(2); c.recv(4096)'
sleep 0.05
q -X "$(head -c 2000 /dev/zero | tr '\0' M)" "$url/digits" # longer than HAProxy's capture
echo "reload" | socat -t5 - "UNIX-CONNECT:$dir/master.sock" >/dev/null  # "Proxy http stopped"
sleep 1
cp "$dir/datagrams" "$out/ingress_log_$v.txt"
