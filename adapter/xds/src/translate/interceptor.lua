--[[
Choreo Connect interceptor contract for stock Envoy's Lua filter.

The adapter registers this file once, as the named source code "interceptor"
of the HCM's Lua filter (filter name "envoy.filters.http.lua"):

  Lua { source_codes: { "interceptor": { inline_string: <this file> } },
        clear_route_cache: false }   -- see "Routing" below
  (no default_source_code: routes without interceptors run no Lua at all)

A route with interceptors gets
  typed_per_filter_config["envoy.filters.http.lua"] = LuaPerRoute { name: "interceptor" }
and its configuration as route metadata,
  metadata.filter_metadata["envoy.filters.http.lua"] = {
    "request": {                       -- optional: the request flow
      "cluster":   "<Envoy cluster of the interceptor service>",
      "authority": "host:port",        -- :authority of the call (default: the cluster name)
      "path":      "/api/v1/handle-request",   -- default as shown
      "timeoutMs": 20000,              -- default 20000
      "includes":  { "request_headers": true, "request_body": true,
                     "request_trailers": true, "invocation_context": true }
    },
    "response": {                      -- optional: the response flow
      ... same keys, "path" default "/api/v1/handle-response", includes may also
      hold "response_headers", "response_body", "response_trailers"
    },
    "methods": {                       -- optional: per-method override, as Choreo
      "POST": { "request": {..}, "response": {..} }   -- Connect keys its configs by
    },                                 -- method; an entry replaces both top-level
                                       -- flows for that method ({} = no interception)
    "context": { "apiName": "", "apiVersion": "", "basePath": "", "pathTemplate": "",
                 "vhost": "", "supportedMethods": "GET POST", "prodClusterName": "",
                 "sandClusterName": "", "organizationId": "" },
    "dynamicEndpoints": { "<endpointName>": "<cluster name>" }
  }
An includes key that is absent means false. The Lua filter must sit after
ext_authz (the enforcer) and before the router.

Interceptor service contract (resources/interceptor-service-open-api-v1.yaml):
POST <path> with a JSON body; the answer is
  200 + JSON  -> apply it
  204         -> change nothing
  other status, connection failure (Envoy answers the call 503) or
  timeout (504)
              -> 500 {"error_message": "Internal Server Error",
                      "error_description": "Internal Server Error", "code": "103500"}
  200 whose body is not a JSON object, or a "body" that is not base64
              -> the same with "code": "103501"
  200 with an empty body -> treated as {} (change nothing)
Error replies carry content-type: application/json (Choreo Connect sent none).
Any Lua error inside this script also fails closed with 103500 (Envoy's own
behaviour on a script error would be to let the request through untouched).

Request flow: requestHeaders (all headers, pseudo-headers included, repeated
names joined with ","), requestTrailers, requestBody (base64), invocationContext
{requestId, protocol, scheme, method, path, source (x-wso2-client-ip, else
x-forwarded-for, else the peer address), authenticationContext {tokenType, token,
keyType} from the ext_authz dynamic metadata when present, plus "context" without
organizationId} -- each only when included. The answer is applied in
Choreo Connect's order: directRespond (status responseCode, default 200 with a
body / 204 without; headersToAdd become the response headers), body (only when
request_body is included, else ignored), headersToRemove -> headersToReplace ->
headersToAdd, the same for trailers (only when the request has trailers), then
dynamicEndpoint, then interceptorContext (kept for the response flow). Header
and trailer names starting with x-wso2 or x-envoy are ignored.

dynamicEndpoint {endpointName}: x-wso2-cluster-header is set to
dynamicEndpoints[endpointName] and the route cache is cleared: the adapter
emits, per x-wso2-endpoints list, a route matching that header. A name
missing from the map fails closed with 103500 (the operation's own route
would otherwise take the request).

Response flow: runs only when this script's request phase completed on the
same stream (a per-stream marker in dynamic metadata). It therefore does not
run when the enforcer denied the request, nor after this script answered
locally (directRespond or an error). Payload: responseCode, responseHeaders,
responseBody, responseTrailers, and requestHeaders/requestBody/requestTrailers/
invocationContext as captured in the request phase, each only when included,
plus interceptorContext. Answer: body (only when response_body is included;
sets :status 200, or 204 when empty), headers remove -> replace -> add,
trailers (only when the response has trailers), responseCode -> :status.

Per-stream state lives in dynamic metadata namespace "envoy.filters.http.lua",
key "interceptor" (only for routes with a response flow). It holds what the
response flow needs (possibly the request body in base64 and the token):
access-log formats that print %DYNAMIC_METADATA(envoy.filters.http.lua)% would
print it.

Routing: with Lua.clear_route_cache left at its default (true) any header edit
by the interceptor makes Envoy recompute the route after ext_authz already ran.
The adapter should set clear_route_cache: false; this script then clears the
route cache itself, only for dynamicEndpoint.

Envoy Lua rules this script follows: objects from handle:headers(),
handle:metadata(), handle:body(), handle:trailers() and dynamicMetadata() are
dead after any call that yields (httpCall, body, trailers), so they are fetched
again afterwards ("object used outside of proper scope" otherwise); pcall may
span those yields (LuaJIT).

LuaJIT (Lua 5.1) only; no modules. Everything below is local to the script.
The JSON codec is minimal: UTF-8 passes through unchanged, raw control
characters inside decoded strings are tolerated, null decodes to nil.
]]

local NS = "envoy.filters.http.lua"              -- our dynamic metadata namespace
local STATE_KEY = "interceptor"                  -- per-stream state key in NS
local AUTHZ_NS = "envoy.filters.http.ext_authz"  -- where the enforcer puts auth info
local CLUSTER_HEADER = "x-wso2-cluster-header"
local DEFAULT_TIMEOUT_MS = 20000
local EMPTY = {}

local byte, char, sub, find, format = string.byte, string.char, string.sub, string.find, string.format
local concat, floor, tostring, type, pairs, ipairs = table.concat, math.floor, tostring, type, pairs, ipairs
local unpack = unpack or table.unpack

---------------------------------------------------------------------------
-- JSON
---------------------------------------------------------------------------

local ESC = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
              ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
for i = 0, 31 do
  local c = char(i)
  if not ESC[c] then ESC[c] = format('\\u%04x', i) end
end

local encode_value

-- A byte loop (compiled by the JIT) is ~25x faster than a pattern scan, and
-- most strings (base64 bodies, tokens) have nothing to escape.
local function needs_escape(s)
  for i = 1, #s do
    local b = byte(s, i)
    if b < 32 or b == 34 or b == 92 then return true end
  end
  return false
end

local function encode_string(s, out, n)
  out[n + 1] = '"'
  if needs_escape(s) then s = s:gsub('[%z\1-\31"\\]', ESC) end
  out[n + 2] = s
  out[n + 3] = '"'
  return n + 3
end

local function encode_number(v)
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  if v == floor(v) and v > -1e15 and v < 1e15 then return format("%d", v) end
  return format("%.17g", v)
end

-- Appends the JSON of v to out (a string list) after index n; returns the new n.
-- A table is an array when its keys are exactly 1..#t and it is not empty;
-- every other table, the empty one included, is an object.
encode_value = function(v, out, n, depth)
  local t = type(v)
  if t == "string" then return encode_string(v, out, n) end
  if t == "number" then out[n + 1] = encode_number(v); return n + 1 end
  if t == "boolean" then out[n + 1] = v and "true" or "false"; return n + 1 end
  if t ~= "table" then out[n + 1] = "null"; return n + 1 end
  if depth > 64 then error("json: nesting too deep") end
  local count = 0
  for _ in pairs(v) do count = count + 1 end
  if count > 0 and count == #v then
    out[n + 1] = "["
    n = n + 1
    for i = 1, count do
      if i > 1 then out[n + 1] = ","; n = n + 1 end
      n = encode_value(v[i], out, n, depth + 1)
    end
    out[n + 1] = "]"
    return n + 1
  end
  out[n + 1] = "{"
  n = n + 1
  local first = true
  for k, val in pairs(v) do
    if not first then out[n + 1] = ","; n = n + 1 end
    first = false
    n = encode_string(tostring(k), out, n)
    out[n + 1] = ":"
    n = encode_value(val, out, n + 1, depth + 1)
  end
  out[n + 1] = "}"
  return n + 1
end

local function json_encode(v)
  local out = {}
  local n = encode_value(v, out, 0, 0)
  return concat(out, "", 1, n)
end

local UNESC = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t' }

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
              0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local decode_value

local function skip_ws(s, i)
  return find(s, "[^ \t\r\n]", i) or (#s + 1)
end

-- Plain finds only (no pattern scans over long strings). Raw control
-- characters inside strings are tolerated.
local function decode_string(s, i) -- s at i is the opening quote
  local j = i + 1
  local q = find(s, '"', j, true)
  if not q then error("json: unterminated string") end
  local k = find(s, "\\", j, true)
  if not k or k > q then return sub(s, j, q - 1), q + 1 end -- no escapes
  local parts, n = {}, 0
  while true do
    if q < j then q = find(s, '"', j, true) end
    if not q then error("json: unterminated string") end
    if not k or k > q then
      n = n + 1; parts[n] = sub(s, j, q - 1)
      return concat(parts, "", 1, n), q + 1
    end
    if k > j then n = n + 1; parts[n] = sub(s, j, k - 1) end
    local e = sub(s, k + 1, k + 1)
    if e == "u" then
      local hex = sub(s, k + 2, k + 5)
      if not find(hex, "^%x%x%x%x$") then error("json: bad \\u escape") end
      local cp = tonumber(hex, 16)
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF and sub(s, j, j + 1) == "\\u" then
        local lo = tonumber(sub(s, j + 2, j + 5), 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          j = j + 6
        end
      end
      n = n + 1; parts[n] = utf8_char(cp)
    else
      local u = UNESC[e]
      if not u then error("json: bad escape") end
      n = n + 1; parts[n] = u
      j = k + 2
    end
    k = find(s, "\\", j, true)
  end
end

decode_value = function(s, i, depth)
  i = skip_ws(s, i)
  local c = sub(s, i, i)
  if c == '"' then return decode_string(s, i) end
  if c == "{" or c == "[" then
    if depth > 64 then error("json: nesting too deep") end
    local is_obj, close = c == "{", c == "{" and "}" or "]"
    local res, n = {}, 0
    i = skip_ws(s, i + 1)
    if sub(s, i, i) == close then return res, i + 1 end
    while true do
      local key
      if is_obj then
        i = skip_ws(s, i)
        if sub(s, i, i) ~= '"' then error("json: object key expected") end
        key, i = decode_string(s, i)
        i = skip_ws(s, i)
        if sub(s, i, i) ~= ":" then error("json: ':' expected") end
        i = i + 1
      end
      local v
      v, i = decode_value(s, i, depth + 1)
      if is_obj then res[key] = v else n = n + 1; res[n] = v end
      i = skip_ws(s, i)
      local d = sub(s, i, i)
      if d == close then return res, i + 1 end
      if d ~= "," then error("json: ',' or '" .. close .. "' expected") end
      i = i + 1
    end
  end
  if sub(s, i, i + 3) == "true" then return true, i + 4 end
  if sub(s, i, i + 4) == "false" then return false, i + 5 end
  if sub(s, i, i + 3) == "null" then return nil, i + 4 end
  local a, b = find(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", i)
  local num = a and tonumber(sub(s, a, b))
  if not num then error("json: unexpected character at " .. i) end
  return num, b + 1
end

local function json_decode(s)
  local v, i = decode_value(s, 1, 0)
  if skip_ws(s, i) <= #s then error("json: trailing data") end
  return v
end

---------------------------------------------------------------------------
-- base64 decoding (encoding uses Envoy's handle:base64Escape)
---------------------------------------------------------------------------

local B64 = {}
do
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  for i = 1, 64 do B64[byte(alphabet, i)] = i - 1 end
end

-- Standard alphabet; whitespace is ignored, padding is optional. Returns nil
-- for anything else (wrong characters, "=" inside, a length of 4n+1).
local function base64_decode(s)
  if find(s, "\n", 1, true) or find(s, "\r", 1, true) or find(s, " ", 1, true) or find(s, "\t", 1, true) then
    s = s:gsub("[ \t\r\n]", "")
  end
  local n = #s
  local body = s
  if sub(s, -2) == "==" then body = sub(s, 1, n - 2)
  elseif sub(s, -1) == "=" then body = sub(s, 1, n - 1) end
  if body ~= s and n % 4 ~= 0 then return nil end
  local len = #body
  local rem = len % 4
  if rem == 1 then return nil end
  local out, on, bytes, bn = {}, 0, {}, 0
  for i = 1, len - rem, 4 do
    local a, b, c, d = byte(body, i, i + 3)
    a, b, c, d = B64[a], B64[b], B64[c], B64[d]
    if not (a and b and c and d) then return nil end -- not in the alphabet (or "=" inside)
    local v = a * 262144 + b * 4096 + c * 64 + d
    bytes[bn + 1] = floor(v / 65536)
    bytes[bn + 2] = floor(v / 256) % 256
    bytes[bn + 3] = v % 256
    bn = bn + 3
    if bn >= 3000 then on = on + 1; out[on] = char(unpack(bytes, 1, bn)); bn = 0 end
  end
  if rem > 0 then
    local a, b, c = byte(body, len - rem + 1, len)
    a, b, c = B64[a], B64[b], c and B64[c]
    if not (a and b) or (rem == 3 and not c) then return nil end
    local v = a * 262144 + b * 4096 + (c and c * 64 or 0)
    bn = bn + 1; bytes[bn] = floor(v / 65536)
    if rem == 3 then bn = bn + 1; bytes[bn] = floor(v / 256) % 256 end
  end
  if bn > 0 then on = on + 1; out[on] = char(unpack(bytes, 1, bn)) end
  return concat(out, "", 1, on)
end

---------------------------------------------------------------------------
-- helpers
---------------------------------------------------------------------------

-- Errors with this marker carry an error code instead of being a script bug.
local FAIL = {}
local function fail(code, why) error({ [FAIL] = true, code = code, why = why }, 0) end

local function error_body(code)
  return '{"error_message": "Internal Server Error", "error_description": "Internal Server Error", "code": "'
      .. code .. '"}'
end

-- Header map (or trailers) as a Lua table; repeated names joined with ",".
local function header_table(map)
  local t = {}
  if map == nil then return t end
  for k, v in pairs(map) do
    local old = t[k]
    t[k] = old and (old .. "," .. v) or v
  end
  return t
end

local function is_protected(name)
  local l = name:lower()
  return sub(l, 1, 6) == "x-wso2" or sub(l, 1, 7) == "x-envoy"
end

local function as_string(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return encode_number(v) end
  if t == "boolean" then return tostring(v) end
  return nil
end

-- headersToRemove -> headersToReplace -> headersToAdd (or trailersTo*).
local function edit_map(map, answer, what)
  local rm, rp, ad = answer[what .. "ToRemove"], answer[what .. "ToReplace"], answer[what .. "ToAdd"]
  if type(rm) == "table" then
    for _, k in ipairs(rm) do
      if type(k) == "string" and not is_protected(k) then map:remove(k) end
    end
  end
  if type(rp) == "table" then
    for k, v in pairs(rp) do
      v = as_string(v)
      if v and type(k) == "string" and not is_protected(k) then map:replace(k, v) end
    end
  end
  if type(ad) == "table" then
    for k, v in pairs(ad) do
      v = as_string(v)
      if v and type(k) == "string" and not is_protected(k) then map:add(k, v) end
    end
  end
end

local function has_edits(answer, what)
  return answer[what .. "ToRemove"] ~= nil or answer[what .. "ToReplace"] ~= nil or answer[what .. "ToAdd"] ~= nil
end

-- The request/response flow configs of a route for a method, plus the metadata object.
local function flow_configs(handle, method)
  local md = handle:metadata()
  local req, resp = md:get("request"), md:get("response")
  local methods = md:get("methods")
  local m = methods and method and methods[method]
  if m then req, resp = m.request, m.response end
  return req, resp, md
end

local function body_base64(handle, buf)
  if buf == nil or buf:length() == 0 then return "" end
  return handle:base64Escape(buf:getBytes(0, buf:length()))
end

-- POSTs payload to the interceptor service. Returns the decoded answer (a
-- table), or nil for 204; fails with 103500/103501 otherwise.
local function call_service(handle, cfg, default_path, payload)
  local cluster = cfg.cluster
  if type(cluster) ~= "string" or cluster == "" then fail("103500", "no interceptor cluster configured") end
  local headers, body = handle:httpCall(cluster, {
    [":method"] = "POST",
    [":path"] = cfg.path or default_path,
    [":authority"] = cfg.authority or cluster,
    ["content-type"] = "application/json",
    ["accept"] = "application/json",
  }, json_encode(payload), floor(tonumber(cfg.timeoutMs) or DEFAULT_TIMEOUT_MS), false)
  local status = headers and headers[":status"]
  if status == "204" then return nil end
  if status ~= "200" then
    fail("103500", "interceptor service answered " .. tostring(status) .. ": " .. tostring(body))
  end
  if body == nil or not find(body, "[^ \t\r\n]") then return {} end
  local ok, answer = pcall(json_decode, body)
  if not ok or type(answer) ~= "table" or #answer > 0 then
    fail("103501", "interceptor service answer is not a JSON object: " .. tostring(answer))
  end
  return answer
end

local function decode_body(b64)
  if type(b64) ~= "string" then fail("103501", "body is not a string") end
  local data = base64_decode(b64)
  if data == nil then fail("103501", "body is not valid base64") end
  return data
end

local function invocation_context(handle, headers, ctx)
  local inv = {}
  for k, v in pairs(ctx) do
    if k ~= "organizationId" then inv[k] = v end
  end
  local si = handle:streamInfo()
  inv.requestId = headers:get("x-request-id")
  inv.protocol = si:protocol()
  inv.scheme = headers:get(":scheme")
  inv.method = headers:get(":method")
  inv.path = headers:get(":path")
  -- the gateway's own idea of the client address when present, else as Choreo Connect
  local src = headers:get("x-wso2-client-ip")
  if src == nil or src == "" then src = headers:get("x-forwarded-for") end
  if src == nil or src == "" then src = si:downstreamDirectRemoteAddress() end
  inv.source = src
  local authz = si:dynamicMetadata():get(AUTHZ_NS)
  if authz then
    inv.authenticationContext = { tokenType = authz.tokenType, token = authz.token, keyType = authz.keyType }
  end
  return inv
end

---------------------------------------------------------------------------
-- request flow
---------------------------------------------------------------------------

local function on_request(handle)
  local headers = handle:headers()
  local method = headers:get(":method")
  local req_cfg, resp_cfg, md = flow_configs(handle, method)
  if not req_cfg and not resp_cfg then return end
  local rinc = req_cfg and req_cfg.includes or EMPTY
  local pinc = resp_cfg and resp_cfg.includes or EMPTY
  -- plain Lua copies: the metadata and header objects die at the first yield
  local ctx = md:get("context") or EMPTY
  local endpoints = md:get("dynamicEndpoints")

  -- capture what either flow needs; the body and trailers wait for the whole request
  local req_headers, inv, req_body, req_trailers
  if rinc.request_headers or pinc.request_headers then req_headers = header_table(headers) end
  if rinc.invocation_context or pinc.invocation_context then inv = invocation_context(handle, headers, ctx) end
  local want_trailers = rinc.request_trailers or pinc.request_trailers
  if rinc.request_body or pinc.request_body or want_trailers then
    local buf = handle:body()
    if rinc.request_body or pinc.request_body then req_body = body_base64(handle, buf) end
  end
  if want_trailers then req_trailers = header_table(handle:trailers()) end

  local state
  if resp_cfg then
    state = { method = method }
    if pinc.request_headers then state.requestHeaders = req_headers end
    if pinc.request_body then state.requestBody = req_body end
    if pinc.request_trailers then state.requestTrailers = req_trailers end
    if pinc.invocation_context then state.invocationContext = inv end
  end

  if req_cfg then
    local payload = {}
    if rinc.request_headers then payload.requestHeaders = req_headers end
    if rinc.request_body then payload.requestBody = req_body end
    if rinc.request_trailers then payload.requestTrailers = req_trailers end
    if rinc.invocation_context then payload.invocationContext = inv end
    local answer = call_service(handle, req_cfg, "/api/v1/handle-request", payload)
    if answer then
      if answer.directRespond == true then
        local data = answer.body ~= nil and decode_body(answer.body) or ""
        local code = tonumber(answer.responseCode) or (data == "" and 204 or 200)
        local rh = {}
        if type(answer.headersToAdd) == "table" then
          for k, v in pairs(answer.headersToAdd) do
            v = as_string(v)
            if v and type(k) == "string" then rh[k] = v end
          end
        end
        rh[":status"] = encode_number(code)
        handle:respond(rh, data ~= "" and data or nil)
        return -- not reached: respond() ends the script
      end
      -- handle:headers() is fetched again after every call that may yield
      -- (httpCall, body, trailers): the previous object is dead by then
      if answer.body ~= nil then
        if rinc.request_body then
          local data = decode_body(answer.body)
          handle:body(true):setBytes(data)
          handle:headers():replace("content-length", tostring(#data))
        else
          handle:logWarn("interceptor: request body returned but request_body is not included; ignored")
        end
      end
      edit_map(handle:headers(), answer, "headers")
      if has_edits(answer, "trailers") then
        handle:body() -- trailers are only reachable after the whole body
        local trailers = handle:trailers()
        if trailers then
          edit_map(trailers, answer, "trailers")
        else
          handle:logDebug("interceptor: request has no trailers; trailer edits ignored")
        end
      end
      local ep = answer.dynamicEndpoint
      local name = type(ep) == "table" and ep.endpointName
      if type(name) == "string" and name ~= "" then
        local cluster = type(endpoints) == "table" and endpoints[name] or nil
        if type(cluster) ~= "string" then
          -- routes name their clusters: an unknown list would silently fall
          -- back to the operation's own route, so fail closed instead
          fail("103500", "dynamicEndpoint " .. name .. " is not an x-wso2-endpoints list of the API")
        end
        handle:headers():replace(CLUSTER_HEADER, cluster)
        handle:clearRouteCache()
      end
      if state and type(answer.interceptorContext) == "table" then
        state.interceptorContext = answer.interceptorContext
      end
    end
  end

  -- the marker that lets the response flow run (set only when we let the request through)
  if state then handle:streamInfo():dynamicMetadata():set(NS, STATE_KEY, state) end
end

---------------------------------------------------------------------------
-- response flow
---------------------------------------------------------------------------

local function on_response(handle)
  local own = handle:streamInfo():dynamicMetadata():get(NS)
  local state = own and own[STATE_KEY]
  if type(state) ~= "table" then return end -- request phase did not complete: denied or answered locally
  local _, resp_cfg = flow_configs(handle, state.method)
  if not resp_cfg then return end
  local inc = resp_cfg.includes or EMPTY
  local headers = handle:headers()

  local payload = { responseCode = tonumber(headers:get(":status")) }
  if inc.response_headers then payload.responseHeaders = header_table(headers) end
  if inc.response_body or inc.response_trailers then
    local buf = handle:body()
    if inc.response_body then payload.responseBody = body_base64(handle, buf) end
  end
  if inc.response_trailers then payload.responseTrailers = header_table(handle:trailers()) end
  if inc.request_headers then payload.requestHeaders = state.requestHeaders end
  if inc.request_body then payload.requestBody = state.requestBody end
  if inc.request_trailers then payload.requestTrailers = state.requestTrailers end
  if inc.invocation_context then payload.invocationContext = state.invocationContext end
  payload.interceptorContext = state.interceptorContext

  local answer = call_service(handle, resp_cfg, "/api/v1/handle-response", payload)
  if not answer then return end

  if answer.body ~= nil then
    if inc.response_body then
      local data = decode_body(answer.body)
      handle:body(true):setBytes(data)
      headers = handle:headers()
      headers:replace("content-length", tostring(#data))
      headers:replace(":status", #data == 0 and "204" or "200")
    else
      handle:logWarn("interceptor: response body returned but response_body is not included; ignored")
    end
  end
  edit_map(handle:headers(), answer, "headers")
  if has_edits(answer, "trailers") then
    handle:body()
    local trailers = handle:trailers()
    if trailers then edit_map(trailers, answer, "trailers") end
  end
  local code = tonumber(answer.responseCode)
  if code then handle:headers():replace(":status", encode_number(code)) end
end

---------------------------------------------------------------------------
-- entry points: every failure, expected or not, fails closed
---------------------------------------------------------------------------

local function describe(err)
  if type(err) == "table" and err[FAIL] then return err.code, err.why end
  return "103500", "script error: " .. tostring(err)
end

-- REWRITE_RESOURCE_METHOD (an operation policy): the route's metadata
-- "methodRewrite" is the method the backend sees. It is applied after the
-- request flow (the interceptor sees the client's method), on a route of
-- one method (adapter/xds/src/translate/route.rs).
local function rewrite_method(handle)
  local md = handle:metadata()
  local m = md and md:get("methodRewrite")
  if type(m) == "string" and m ~= "" then handle:headers():replace(":method", m) end
end

function envoy_on_request(handle)
  local ok, err = pcall(on_request, handle)
  if ok then ok, err = pcall(rewrite_method, handle) end
  if ok then return end
  local code, why = describe(err)
  handle:logErr("interceptor (request flow): " .. tostring(why))
  handle:respond({ [":status"] = "500", ["content-type"] = "application/json" }, error_body(code))
end

function envoy_on_response(handle)
  local ok, err = pcall(on_response, handle)
  if ok then return end
  local code, why = describe(err)
  handle:logErr("interceptor (response flow): " .. tostring(why))
  local buf = handle:body(true)
  local headers = handle:headers()
  local names = {}
  for k in pairs(headers) do names[#names + 1] = k end
  for _, k in ipairs(names) do headers:remove(k) end
  local body = error_body(code)
  headers:add(":status", "500")
  headers:add("content-type", "application/json")
  headers:add("content-length", tostring(#body))
  buf:setBytes(body)
end

-- Offline tests run this file with the luajit CLI, which defines the global
-- "arg"; Envoy does not, so nothing is exported there.
if rawget(_G, "arg") ~= nil then
  INTERCEPTOR_TEST_EXPORTS = { json_encode = json_encode, json_decode = json_decode, base64_decode = base64_decode }
end
