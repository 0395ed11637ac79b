# Sample policy for the gateway's OPA operation policy tests.
# The input follows Choreo Connect's default OPA request generator:
#   input.method, input.path, input.requestOrigin, input.transportHeaders,
#   input.apiContext, input.authenticationContext (when sendAccessToken).
# Rego v1 syntax (OPA 1.x): `if` and `contains` are required.
package example

# POST /v1/data/example/allow -> {"result": true} or {"result": false}
default allow := false

allow if {
	input.method == "GET"
	input.transportHeaders["x-user"] == "alice"
}

# No default: undefined when it does not match -> OPA answers {} (no "result").
allow_no_default if {
	input.method == "GET"
	input.transportHeaders["x-user"] == "alice"
}

# An object result -> {"result": {"allow": ..., "user": ...}}
decision := {"allow": allow, "user": object.get(input.transportHeaders, "x-user", "")}

# A non-boolean result (a set, served as a JSON array), like CC's envoy_headers test rule.
pseudo_headers contains name if {
	some name, _ in input.transportHeaders
	startswith(name, ":")
}
