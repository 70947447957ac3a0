#!/bin/bash
# Regenerates the verbatim HAProxy outputs in this directory (tests/testdata/haproxy/), which
# tests/unit/haproxy-manager/haproxy/show_parsers_test.cc parses and asserts exactly. Needs socat
# and curl. Usage: capture.sh <haproxy binary> <version label, e.g. 2.6>
# Ports 18001-18003 on 127.0.0.1 must be free; the captured text contains pids and the scratch
# directory /tmp/haproxy-capture-<label>, which the tests assert as they are.
set -euo pipefail
bin=$1
v=$2
out=$(cd "$(dirname "$0")" && pwd)
dir=/tmp/haproxy-capture-$v
rm -rf "$dir" && mkdir -p "$dir"
printf '/app app_main\n/other/path be_other\n/spaced value with spaces\n' >"$dir/routes.map"
cat >"$dir/haproxy.cfg" <<CFG
global
    stats socket $dir/admin.sock mode 600 level admin expose-fd listeners
    hard-stop-after 30s

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend fe
    bind 127.0.0.1:18001
    http-request return status 200 content-type text/plain string "generation-1" if { path /gen }
    use_backend %[path,map_beg($dir/routes.map)]
    default_backend be_app

frontend origin
    bind 127.0.0.1:18002
    http-request return status 200 content-type text/plain string "origin"

backend be_app
    balance leastconn
    server-template slot 1-3 127.0.0.1:1 disabled check inter 200ms

backend be_other
    server-template slot 1-2 127.0.0.1:1 disabled check inter 200ms
CFG
admin() { echo "$1" | socat -t5 - "UNIX-CONNECT:$dir/admin.sock"; }
master() { echo "$1; quit" | socat -t5 - "UNIX-CONNECT:$dir/master.sock"; }

"$bin" -c -f "$dir/haproxy.cfg" >/dev/null 2>&1
setsid "$bin" -W -S "$dir/master.sock,mode,600" -f "$dir/haproxy.cfg" >>"$dir/stdout.log" \
  2>>"$dir/stderr.log" &
master_pid=$!
trap 'kill -TERM $master_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -S "$dir/admin.sock" ] && break; sleep 0.1; done
sleep 0.3

admin "set server be_app/slot1 addr 127.0.0.1 port 18002; set server be_app/slot1 state ready; set server be_app/slot1 health up"
admin "set server be_app/slot2 addr 127.0.0.1 port 18002; set server be_app/slot2 state ready; set server be_app/slot2 state drain"
admin "set maxconn server be_app/slot1 5"
admin "set server be_other/slot1 addr 127.0.0.1 port 18003; set server be_other/slot1 state ready"
admin "set server be_other/slot1 check-port 18002"
admin "add map $dir/routes.map /added be_other"
sleep 0.6
for _ in $(seq 3); do curl -s -o /dev/null 127.0.0.1:18001/app/x; done

admin "show info" >"$out/show_info_$v.txt"
admin "show stat" >"$out/show_stat_$v.csv"
admin "show servers state" >"$out/show_servers_state_$v.txt"
admin "show map" >"$out/show_map_list_$v.txt"
admin "show map $dir/routes.map" >"$out/show_map_$v.txt"
master "show proc" >"$out/show_proc_$v.txt"

# A request in flight keeps the old worker alive across the reload.
exec 3<>/dev/tcp/127.0.0.1/18001
printf 'GET /gen HTTP/1.1\r\nHost: x\r\n' >&3
sed -i 's/generation-1/generation-2/' "$dir/haproxy.cfg"
master "reload" >"$out/reload_reply_success_$v.txt"
sleep 0.5
master "show proc" >"$out/show_proc_${v}_after_reload.txt"

echo "    bogus_directive here" >>"$dir/haproxy.cfg"
"$bin" -c -f "$dir/haproxy.cfg" >"$out/check_invalid_$v.txt" 2>&1 || true
master "reload" >"$out/reload_reply_failure_$v.txt"
sleep 0.5
master "show proc" >"$out/show_proc_${v}_after_failed_reload.txt"
printf '\r\n' >&3
exec 3>&-
