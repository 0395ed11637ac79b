//! Operation policies available without files in the project: the ones API
//! Manager 4.1 ships for Choreo Connect (README.md, "Operation policies"),
//! plus `regoPolicy_v1` for Rego evaluated inside the enforcer. A project's
//! own `Policies/<name>_<version>.*` of the same name wins.
//!
//! Each entry: `<name>_<version>`, the specification, the definition.

/// (stem, specification, definition)
pub(crate) const BUILT_IN: &[(&str, &str, &str)] = &[
    (
        "ccAddHeader_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Mediation
  name: ccAddHeader
  version: v1
  displayName: Add Header
  description: Sets a header on the request or the response (replacing any value it had).
  applicableFlows: [request, response]
  supportedGateways: [ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: true
  policyAttributes:
    - name: headerName
      type: String
      required: true
      validationRegex: '^([a-zA-Z_:][a-zA-Z\d_\- ]*)$'
    - name: headerValue
      type: String
      required: true
      validationRegex: '^.+$'
"#,
        "definition:\n  action: SET_HEADER\n  parameters:\n    headerName: {{ .headerName }}\n    headerValue: {{ .headerValue }}\n",
    ),
    (
        "ccRemoveHeader_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Mediation
  name: ccRemoveHeader
  version: v1
  displayName: Remove Header
  description: Removes a header from the request or the response.
  applicableFlows: [request, response]
  supportedGateways: [ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: true
  policyAttributes:
    - name: headerName
      type: String
      required: true
      validationRegex: '^([a-zA-Z_:][a-zA-Z\d_\- ]*)$'
"#,
        "definition:\n  action: REMOVE_HEADER\n  parameters:\n    headerName: {{ .headerName }}\n",
    ),
    (
        "ccCallInterceptorService_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Mediation
  name: ccCallInterceptorService
  version: v1
  displayName: Call Interceptor Service
  description: Calls an interceptor service (Choreo Connect's interceptor contract) in the request or response flow.
  applicableFlows: [request, response]
  supportedGateways: [ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: false
  policyAttributes:
    - name: interceptorServiceURL
      type: String
      required: true
    - name: includes
      type: String
      required: true
      validationRegex: '^(([a-zA-Z\d_][a-zA-Z\d_\-]*)(,[a-zA-Z\d_][a-zA-Z\d_\-]*)*)$'
"#,
        "definition:\n  action: CALL_INTERCEPTOR_SERVICE\n  parameters:\n    interceptorServiceURL: {{ .interceptorServiceURL }}\n    includes: {{ .includes }}\n",
    ),
    (
        "ccChangeHTTPMethod_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Mediation
  name: ccChangeHTTPMethod
  version: v1
  displayName: Change HTTP Method
  description: Sends the request to the backend with another method.
  applicableFlows: [request]
  supportedGateways: [ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: false
  policyAttributes:
    - name: currentMethod
      type: Enum
      required: false
      validationRegex: '^(GET|PUT|POST|PATCH|DELETE|HEAD|OPTIONS)$'
    - name: updatedMethod
      type: Enum
      required: true
      validationRegex: '^(GET|PUT|POST|PATCH|DELETE|HEAD|OPTIONS)$'
"#,
        "definition:\n  action: REWRITE_RESOURCE_METHOD\n  parameters:\n{{- if isParamExists . \"currentMethod\" }}\n    currentMethod: {{ .currentMethod }}\n{{- end }}\n    updatedMethod: {{ .updatedMethod }}\n",
    ),
    (
        "addQueryParam_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Mediation
  name: addQueryParam
  version: v1
  displayName: Add Query Param
  description: Adds a query parameter to the request.
  applicableFlows: [request]
  supportedGateways: [Synapse, ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: true
  policyAttributes:
    - name: paramKey
      type: String
      required: true
      validationRegex: '^([a-zA-Z_%][a-zA-Z\d_\- %]*)$'
    - name: paramValue
      type: String
      required: true
      validationRegex: '^([a-zA-Z\d_%][a-zA-Z\d_\- %]*)$'
"#,
        "definition:\n  action: ADD_QUERY\n  parameters:\n    queryParamName: {{ .paramKey }}\n    queryParamValue: {{ .paramValue }}\n",
    ),
    (
        "rewriteResourcePath_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Mediation
  name: rewriteResourcePath
  version: v1
  displayName: Rewrite Resource Path
  description: Sends the request to another resource path of the endpoint; {uri.var.<param>} stands for a path parameter.
  applicableFlows: [request]
  supportedGateways: [Synapse, ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: false
  policyAttributes:
    - name: newResourcePath
      type: String
      required: true
      validationRegex: '^/?([a-zA-Z0-9!@#$%^&*)(+=._\-~:,?{}/]*)$'
    - name: includeQueryParams
      type: Boolean
      required: false
      defaultValue: true
      validationRegex: '^(true|false)$'
"#,
        "definition:\n  action: REWRITE_RESOURCE_PATH\n  parameters:\n    resourcePath: {{ .newResourcePath }}\n{{- if isParamExists . \"includeQueryParams\" }}\n    includeQueryParams: {{ .includeQueryParams }}\n{{- end }}\n",
    ),
    (
        "opaPolicy_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Security
  name: opaPolicy
  version: v1
  displayName: Validate Request with OPA Policy
  description: Asks an Open Policy Agent server whether the request may go on.
  applicableFlows: [request]
  supportedGateways: [Synapse, ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: false
  policyAttributes:
    - name: serverUrl
      type: String
      required: true
    - name: accessKey
      type: String
      required: false
    - name: policy
      type: String
      required: true
    - name: rule
      type: String
      required: false
      defaultValue: allow
    - name: sendAccessToken
      type: Boolean
      required: false
      defaultValue: false
      validationRegex: '^(true|false)$'
    - name: additionalProperties
      type: String
      required: false
    - name: maxOpenConnections
      type: Integer
      required: false
      validationRegex: '^\d{1,4}$'
    - name: maxPerRoute
      type: Integer
      required: false
      validationRegex: '^\d{1,4}$'
    - name: connectionTimeout
      type: Integer
      required: false
      validationRegex: '^\d{1,4}$'
"#,
        r#"definition:
  action: OPA
  parameters:
    serverURL: {{ .serverUrl }}
{{- if isParamExists . "accessKey" }}
    accessKey: {{ .accessKey }}
{{- end }}
    policy: {{ .policy }}
    rule: {{ .rule }}
    sendAccessToken: {{ .sendAccessToken }}
{{- if isParamExists . "additionalProperties" }}
    additionalProperties: {{ .additionalProperties }}
{{- end }}
{{- if isParamExists . "maxOpenConnections" }}
    maxOpenConnections: {{ .maxOpenConnections }}
{{- end }}
{{- if isParamExists . "maxPerRoute" }}
    maxPerRoute: {{ .maxPerRoute }}
{{- end }}
{{- if isParamExists . "connectionTimeout" }}
    connectionTimeout: {{ .connectionTimeout }}
{{- end }}
"#,
    ),
    (
        "regoPolicy_v1",
        r#"type: operation_policy_specification
version: v4.1.0
data:
  category: Security
  name: regoPolicy
  version: v1
  displayName: Validate Request with embedded Rego
  description: Evaluates a Rego module of the project (Policies/<file>.rego) in the enforcer, with OPA's input document; no OPA server.
  applicableFlows: [request]
  supportedGateways: [ChoreoConnect]
  supportedApiTypes: [HTTP]
  multipleAllowed: false
  policyAttributes:
    - name: regoFile
      type: String
      required: true
      validationRegex: '^[a-zA-Z0-9_.\-/]+\.rego$'
    - name: policy
      type: String
      required: true
    - name: rule
      type: String
      required: false
      defaultValue: allow
    - name: sendAccessToken
      type: Boolean
      required: false
      defaultValue: false
      validationRegex: '^(true|false)$'
    - name: additionalProperties
      type: String
      required: false
"#,
        r#"definition:
  action: OPA
  parameters:
    regoFile: {{ .regoFile }}
    policy: {{ .policy }}
    rule: {{ .rule }}
    sendAccessToken: {{ .sendAccessToken }}
{{- if isParamExists . "additionalProperties" }}
    additionalProperties: {{ .additionalProperties }}
{{- end }}
"#,
    ),
];
