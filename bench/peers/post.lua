-- wrk script for bench/peers_bench.sh: the one request every system is sent (a KServe v1
-- predict body; the Ray-style class and KServe's v1 :predict both answer {"predictions": ...}).
-- peers_bench.sh reads the body from the `local body = '...'` line for its curl check, so keep it
-- on one line in single quotes.
local body = '{"instances":[[1,2,3,4]]}'

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
-- No request()/response() functions, so wrk sends one pre-formatted request over and over.
