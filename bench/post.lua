-- wrk script for bench/replica_bench.sh: the KServe v2 infer request every target is sent.
-- replica_bench.sh reads the body from the `local body = '...'` line below (for its curl check),
-- so keep it on one line in single quotes.
local body = '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
-- No request()/response() functions: wrk then sends one pre-formatted request (with
-- Content-Length) over and over and skips calling into Lua per response, so the client's own
-- cost stays as low as wrk allows.
