//! GraphQL query analysis: which operations a request touches, how deep and
//! how complex its query is, as Choreo Connect's enforcer judges them. Pure:
//! the schema is built once per API ([`GraphqlSchema::parse`]), the query is
//! parsed once per request ([`analyse`]), the limits of the caller's
//! subscription policy are checked afterwards ([`check_limits`]).
//!
//! # Choreo Connect's behaviour (1.2.0)
//!
//! **Extracting the query.** Only the request body is read. With no
//! `content-type`, or `content-type` equal (ignoring case) to
//! `application/json`, the body is a JSON object whose string `query` is the
//! query; `operationName` and `variables` are not read. With
//! `application/graphql` the body is the query. Anything else is refused. The
//! refusals are 400 `900422` `INVALID QUERY` with these descriptions:
//! `Invalid GraphQL query body structure` (not JSON, no string `query`),
//! `Invalid content type. Make sure the content type is application/json or
//! application/graphql`, `Query cannot be empty` (blank query). A GET with
//! `?query=` has no body and is not supported. This happens before the filter
//! chain, so an invalid query is refused before authentication.
//! [`GraphqlRequest::from_body`] does the same, except that media type
//! parameters (`application/json; charset=utf-8`) are accepted and
//! `operationName` and `variables` are read.
//!
//! **Validating.** The query is parsed and validated against the whole schema
//! (every field of every level, fragments, operations). A syntax error is
//! `900422` with description `Invalid syntax`; a validation error (unknown
//! field, undefined or unused fragment, fragment cycle, an anonymous operation
//! next to others, ...) is `900422` with description `Payload is invalid`.
//!
//! **Operations.** The first operation of the document is taken, whatever
//! `operationName` says; its type is the method (`QUERY`, `MUTATION`,
//! `SUBSCRIPTION`) and its operations are the names (not aliases) of the
//! fields that are fields of the root type, deduplicated in order of
//! appearance. Fragment spreads and inline fragments are skipped (a root
//! field selected only through a fragment is not found, and a query with no
//! operation found is answered 404), while nested fields are searched too: a
//! field at any level whose name is also a root field counts as an operation.
//! Introspection fields (`__typename`, `__schema`, `__type`) are not root
//! fields of the schema, so are never operations. An operation with no
//! resource of the API refuses the request (404).
//!
//! **Depth** (only when the subscription policy's `graphQLMaxDepth` is above
//! 0): the number of field levels, a root field being level 1
//! (`{ hero { name } }` is 2). Fragments and inline fragments add no level;
//! their fields are counted where they are spread. Introspection fields count
//! like any field. Fields skipped by `@skip`/`@include` do not count (the
//! analysis is given no variables, so only literal conditions apply). Too deep:
//! 400 `900820` `QUERY TOO DEEP` with description
//! `[maximum query depth exceeded 3 > 2]` (depth, limit).
//!
//! **Complexity** (only when `graphQLMaxComplexity` is above 0): the sum over
//! the root fields of each field's value, where a field's value is
//! `arguments × (own + children)`: `own` is the `complexityValue` of the
//! field's `{type, field}` entry in `graphql-complexity.yaml`, the type being
//! the type the field is selected on (a fragment's type condition inside a
//! fragment), or 1 without an entry; `children` is the sum of its selected
//! fields' values; `arguments` is 1 for a field written without arguments,
//! else the sum over its written arguments of the integer value of a slicing
//! argument (`first`, `last`, `limit`, any case) or 1 for any other argument
//! (a slicing argument given by a variable counts 0). `__typename` is 0. Too
//! complex: 400 `900821` `QUERY TOO COMPLEX` with description
//! `[maximum query complexity exceeded]` (no numbers). Depth is checked first.
//! Both limits come from the subscription policy found by authentication.
//!
//! # Where this module differs, and why
//!
//! * The operation is chosen by `operationName` as GraphQL requires (Choreo
//!   Connect checks the scopes of the first operation while the backend runs
//!   the named one); several operations without a name, or an unknown name,
//!   are `900422` with GraphQL's texts `Must provide operation name if query
//!   contains multiple operations.` and `Unknown operation named 'X'.`
//!   (Choreo Connect only reports the first, and only as a depth failure).
//! * Root fields are found through fragments and inline fragments, and only at
//!   the root ([`Analysis::root_fields`]); `@skip`/`@include` do not remove a
//!   root field (its operation's security still applies). An
//!   introspection-only query has no root field: the caller decides (Choreo
//!   Connect answers 404).
//! * Variables are used: a slicing argument given by a variable counts its
//!   value (the request's, else the variable's default); a value that cannot
//!   be read (null, missing, negative, not a number) counts 1, so nothing
//!   zeroes a field's complexity (Choreo Connect counts it 0); `@skip`/`@include` see the
//!   request's variables (an `if` that cannot be read keeps the field).
//!   Negative slicing values count 0 and sums saturate instead of wrapping.
//! * Validation checks what the analysis needs: fields exist on their type,
//!   sub-selections on object, interface and union types and none on scalars
//!   and enums, fragments are defined, used, acyclic and on composite types
//!   that can apply where they are spread, and the operation's root type
//!   exists. Arguments and variable types are not checked.
//! * The parser refuses selection sets nested more than 64 levels (a syntax
//!   error), whatever the depth limit.

use std::collections::{HashMap, HashSet};
use std::fmt;

use async_graphql_parser::Positioned;
use async_graphql_parser::types::{
    BaseType, Directive, DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition,
    OperationType, Selection, SelectionSet, Type, TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql_value::{ConstValue, Name, Value as GqlValue};
use serde_json::Value;

use crate::deny::{Challenge, Deny};

/// `code` of an invalid query (also: bad body, content type, empty query).
pub const INVALID_QUERY_CODE: &str = "900422";
/// `error_message` of an invalid query.
pub const INVALID_QUERY_MESSAGE: &str = "INVALID QUERY";
/// `code` of a query deeper than the subscription policy allows.
pub const QUERY_TOO_DEEP_CODE: &str = "900820";
/// `error_message` of a query too deep.
pub const QUERY_TOO_DEEP_MESSAGE: &str = "QUERY TOO DEEP";
/// `code` of a query more complex than the subscription policy allows.
pub const QUERY_TOO_COMPLEX_CODE: &str = "900821";
/// `error_message` of a query too complex.
pub const QUERY_TOO_COMPLEX_MESSAGE: &str = "QUERY TOO COMPLEX";
/// `error_description` of a query too complex.
pub const QUERY_TOO_COMPLEX_DESCRIPTION: &str = "[maximum query complexity exceeded]";

/// Description of a body that is not JSON or has no string `query`.
pub const BAD_BODY_DESCRIPTION: &str = "Invalid GraphQL query body structure";
/// Description of a body of another content type.
pub const BAD_CONTENT_TYPE_DESCRIPTION: &str =
    "Invalid content type. Make sure the content type is application/json or application/graphql";
/// Description of a blank query.
pub const EMPTY_QUERY_DESCRIPTION: &str = "Query cannot be empty";
/// Description of a query that does not parse.
pub const SYNTAX_DESCRIPTION: &str = "Invalid syntax";
/// Description of a query that does not validate against the schema.
pub const INVALID_DESCRIPTION: &str = "Payload is invalid";

/// Arguments whose integer value multiplies a field's complexity (compared
/// in lower case).
pub const SLICING_ARGUMENTS: &[&str] = &["first", "last", "limit"];

/// Nesting of selection sets the analysis follows; the parser already stops
/// at 64, this bounds the analysis on its own.
const MAX_NESTING: usize = 128;

/// The kind of a GraphQL operation; its [`OpType::as_str`] is the method of
/// the API's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpType {
    /// `query`
    Query,
    /// `mutation`
    Mutation,
    /// `subscription`
    Subscription,
}

impl OpType {
    /// `QUERY`, `MUTATION` or `SUBSCRIPTION`.
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Query => "QUERY",
            OpType::Mutation => "MUTATION",
            OpType::Subscription => "SUBSCRIPTION",
        }
    }

    fn index(self) -> usize {
        match self {
            OpType::Query => 0,
            OpType::Mutation => 1,
            OpType::Subscription => 2,
        }
    }

    fn from_parser(t: OperationType) -> OpType {
        match t {
            OperationType::Query => OpType::Query,
            OperationType::Mutation => OpType::Mutation,
            OperationType::Subscription => OpType::Subscription,
        }
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `{type, field, complexityValue}` entry of `graphql-complexity.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldComplexity {
    /// The object or interface type the field is selected on.
    pub type_name: String,
    /// The field.
    pub field: String,
    /// `complexityValue`.
    pub value: u32,
}

/// Why a schema or a query was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphqlError {
    /// The request body is not what Choreo Connect reads (the description
    /// is one of [`BAD_BODY_DESCRIPTION`], [`BAD_CONTENT_TYPE_DESCRIPTION`],
    /// [`EMPTY_QUERY_DESCRIPTION`]).
    #[error("{0}")]
    Body(&'static str),
    /// The query does not parse.
    #[error("invalid syntax: {0}")]
    Syntax(String),
    /// The query does not validate against the schema.
    #[error("invalid query: {0}")]
    Invalid(String),
    /// No operation can be chosen (several and no name, or an unknown name).
    #[error("{0}")]
    Operation(String),
    /// The API's schema is not usable (a deployment problem, not the
    /// caller's).
    #[error("invalid schema: {0}")]
    Schema(String),
}

impl GraphqlError {
    /// The `error_description` Choreo Connect gives this error.
    pub fn description(&self) -> &str {
        match self {
            GraphqlError::Body(d) => d,
            GraphqlError::Syntax(_) => SYNTAX_DESCRIPTION,
            GraphqlError::Invalid(_) | GraphqlError::Schema(_) => INVALID_DESCRIPTION,
            GraphqlError::Operation(m) => m,
        }
    }

    /// The refusal: 400 `900422` `INVALID QUERY`.
    pub fn denial(&self) -> GraphqlDenial {
        GraphqlDenial {
            code: INVALID_QUERY_CODE,
            message: INVALID_QUERY_MESSAGE,
            description: self.description().to_string(),
        }
    }
}

/// A refusal of a GraphQL request: always HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlDenial {
    /// `code`: `900422`, `900820` or `900821`.
    pub code: &'static str,
    /// `error_message`
    pub message: &'static str,
    /// `error_description`
    pub description: String,
}

impl GraphqlDenial {
    /// HTTP status of every GraphQL refusal.
    pub const STATUS: u16 = 400;
}

impl From<GraphqlDenial> for Deny {
    fn from(d: GraphqlDenial) -> Deny {
        Deny {
            status: GraphqlDenial::STATUS,
            code: d.code,
            message: d.message,
            description: d.description.into(),
            challenge: Challenge::None,
            headers: Vec::new(),
            empty_body: false,
            answer: None,
        }
    }
}

/// What a request asks of a GraphQL API.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphqlRequest {
    /// The query document.
    pub query: String,
    /// `operationName` (absent when null or empty).
    pub operation_name: Option<String>,
    /// `variables` (an object; `Null` when absent or not an object).
    pub variables: Value,
}

impl GraphqlRequest {
    /// The query, operation name and variables of a request body, by its
    /// `content-type` (see the module documentation).
    pub fn from_body(content_type: Option<&str>, body: &str) -> Result<GraphqlRequest, GraphqlError> {
        let media = content_type.map(|c| c.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        let request = match media.as_deref() {
            None | Some("application/json") => {
                let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(body) else {
                    return Err(GraphqlError::Body(BAD_BODY_DESCRIPTION));
                };
                let Some(Value::String(query)) = o.remove("query") else {
                    return Err(GraphqlError::Body(BAD_BODY_DESCRIPTION));
                };
                let operation_name = match o.remove("operationName") {
                    Some(Value::String(n)) if !n.is_empty() => Some(n),
                    _ => None,
                };
                // Some servers accept `variables` as a JSON text: read it as they would.
                let variables = match o.remove("variables") {
                    Some(v @ Value::Object(_)) => v,
                    Some(Value::String(t)) => match serde_json::from_str::<Value>(&t) {
                        Ok(v @ Value::Object(_)) => v,
                        _ => return Err(GraphqlError::Body(BAD_BODY_DESCRIPTION)),
                    },
                    None | Some(Value::Null) => Value::Null,
                    Some(_) => return Err(GraphqlError::Body(BAD_BODY_DESCRIPTION)),
                };
                GraphqlRequest { query, operation_name, variables }
            }
            Some("application/graphql") => {
                GraphqlRequest { query: body.to_string(), operation_name: None, variables: Value::Null }
            }
            Some(_) => return Err(GraphqlError::Body(BAD_CONTENT_TYPE_DESCRIPTION)),
        };
        if request.query.trim().is_empty() {
            return Err(GraphqlError::Body(EMPTY_QUERY_DESCRIPTION));
        }
        Ok(request)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Object,
    Interface,
    Union,
    Scalar,
    Enum,
    InputObject,
}

impl Kind {
    fn composite(self) -> bool {
        matches!(self, Kind::Object | Kind::Interface | Kind::Union)
    }
}

#[derive(Debug)]
struct FieldDef {
    /// The named type the field returns (lists and non-null removed).
    ty: String,
    /// Its `complexityValue` on this type, or 1.
    complexity: u32,
}

#[derive(Debug)]
struct TypeDef {
    kind: Kind,
    fields: HashMap<String, FieldDef>,
    /// Interfaces an object or interface implements.
    implements: Vec<String>,
    /// Members of a union.
    members: Vec<String>,
    /// The object types a value of this type can be (composite types).
    possible: HashSet<String>,
}

/// An API's schema, as the analysis needs it: types, their fields and what
/// those return, the root types, and the field complexities.
#[derive(Debug)]
pub struct GraphqlSchema {
    types: HashMap<String, TypeDef>,
    /// Root types of query, mutation, subscription.
    roots: [Option<String>; 3],
}

/// The introspection types, so that `__schema` and `__type` selections are
/// followed (and counted) like any other.
const INTROSPECTION_SDL: &str = r#"
type __Schema {
  description: String
  types: [__Type!]!
  queryType: __Type!
  mutationType: __Type
  subscriptionType: __Type
  directives: [__Directive!]!
}
type __Type {
  kind: __TypeKind!
  name: String
  description: String
  specifiedByURL: String
  fields(includeDeprecated: Boolean = false): [__Field!]
  interfaces: [__Type!]
  possibleTypes: [__Type!]
  enumValues(includeDeprecated: Boolean = false): [__EnumValue!]
  inputFields(includeDeprecated: Boolean = false): [__InputValue!]
  ofType: __Type
  isOneOf: Boolean
}
type __Field {
  name: String!
  description: String
  args(includeDeprecated: Boolean = false): [__InputValue!]!
  type: __Type!
  isDeprecated: Boolean!
  deprecationReason: String
}
type __InputValue {
  name: String!
  description: String
  type: __Type!
  defaultValue: String
  isDeprecated: Boolean!
  deprecationReason: String
}
type __EnumValue {
  name: String!
  description: String
  isDeprecated: Boolean!
  deprecationReason: String
}
type __Directive {
  name: String!
  description: String
  locations: [__DirectiveLocation!]!
  args(includeDeprecated: Boolean = false): [__InputValue!]!
  isRepeatable: Boolean!
}
enum __TypeKind { SCALAR OBJECT INTERFACE UNION ENUM INPUT_OBJECT LIST NON_NULL }
enum __DirectiveLocation {
  QUERY MUTATION SUBSCRIPTION FIELD FRAGMENT_DEFINITION FRAGMENT_SPREAD INLINE_FRAGMENT VARIABLE_DEFINITION
  SCHEMA SCALAR OBJECT FIELD_DEFINITION ARGUMENT_DEFINITION INTERFACE UNION ENUM ENUM_VALUE INPUT_OBJECT
  INPUT_FIELD_DEFINITION
}
"#;

const BUILT_IN_SCALARS: &[&str] = &["Int", "Float", "String", "Boolean", "ID"];
const DEFAULT_ROOTS: [&str; 3] = ["Query", "Mutation", "Subscription"];

fn named_type(t: &Type) -> &str {
    let mut t = t;
    loop {
        match &t.base {
            BaseType::Named(n) => return n.as_str(),
            BaseType::List(inner) => t = inner,
        }
    }
}

impl GraphqlSchema {
    /// Builds the schema of an API from its SDL and its field complexities
    /// (entries naming no field of the schema are ignored; a later entry for
    /// the same field wins). Type extensions are merged.
    pub fn parse(sdl: &str, complexity: &[FieldComplexity]) -> Result<GraphqlSchema, GraphqlError> {
        let mut schema = GraphqlSchema { types: HashMap::new(), roots: [None, None, None] };
        for s in BUILT_IN_SCALARS {
            schema.types.insert(s.to_string(), TypeDef::new(Kind::Scalar));
        }
        let builtin = async_graphql_parser::parse_schema(INTROSPECTION_SDL)
            .map_err(|e| GraphqlError::Schema(format!("introspection types: {e}")))?;
        let user = async_graphql_parser::parse_schema(sdl).map_err(|e| GraphqlError::Schema(e.to_string()))?;
        let mut defined: HashSet<String> = HashSet::new();
        let mut explicit_roots = false;
        for def in builtin.definitions.iter().chain(&user.definitions) {
            match def {
                TypeSystemDefinition::Schema(s) => {
                    explicit_roots = true;
                    let s = &s.node;
                    for (i, root) in [&s.query, &s.mutation, &s.subscription].into_iter().enumerate() {
                        if let Some(root) = root {
                            schema.roots[i] = Some(root.node.to_string());
                        }
                    }
                }
                TypeSystemDefinition::Type(t) => schema.add_type(&t.node, &mut defined)?,
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        if !explicit_roots {
            for (i, name) in DEFAULT_ROOTS.iter().enumerate() {
                if schema.types.contains_key(*name) {
                    schema.roots[i] = Some(name.to_string());
                }
            }
        }
        schema.check()?;
        schema.fill_possible_types();
        for c in complexity {
            if let Some(f) = schema.types.get_mut(&c.type_name).and_then(|t| t.fields.get_mut(&c.field)) {
                f.complexity = c.value;
            }
        }
        Ok(schema)
    }

    fn add_type(&mut self, t: &TypeDefinition, defined: &mut HashSet<String>) -> Result<(), GraphqlError> {
        let name = t.name.node.to_string();
        if BUILT_IN_SCALARS.contains(&name.as_str()) && matches!(t.kind, TypeKind::Scalar) {
            // A schema may declare the built-in scalars again.
            return Ok(());
        }
        if !t.extend && !defined.insert(name.clone()) {
            return Err(GraphqlError::Schema(format!("type {name} is defined more than once")));
        }
        let kind = match &t.kind {
            TypeKind::Scalar => Kind::Scalar,
            TypeKind::Object(_) => Kind::Object,
            TypeKind::Interface(_) => Kind::Interface,
            TypeKind::Union(_) => Kind::Union,
            TypeKind::Enum(_) => Kind::Enum,
            TypeKind::InputObject(_) => Kind::InputObject,
        };
        let entry = self.types.entry(name.clone()).or_insert_with(|| TypeDef::new(kind));
        if entry.kind != kind {
            return Err(GraphqlError::Schema(format!("type {name} is extended as another kind of type")));
        }
        let (fields, implements) = match &t.kind {
            TypeKind::Object(o) => (&o.fields[..], &o.implements[..]),
            TypeKind::Interface(i) => (&i.fields[..], &i.implements[..]),
            TypeKind::Union(u) => {
                entry.members.extend(u.members.iter().map(|m| m.node.to_string()));
                (&[][..], &[][..])
            }
            _ => (&[][..], &[][..]),
        };
        entry.implements.extend(implements.iter().map(|i| i.node.to_string()));
        for f in fields {
            let f = &f.node;
            let field = FieldDef { ty: named_type(&f.ty.node).to_string(), complexity: 1 };
            if entry.fields.insert(f.name.node.to_string(), field).is_some() {
                return Err(GraphqlError::Schema(format!("field {name}.{} is defined more than once", f.name.node)));
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), GraphqlError> {
        for (name, t) in &self.types {
            for (field, f) in &t.fields {
                if !self.types.contains_key(&f.ty) {
                    return Err(GraphqlError::Schema(format!("field {name}.{field} is of unknown type {}", f.ty)));
                }
            }
            for i in &t.implements {
                if self.kind(i) != Some(Kind::Interface) {
                    return Err(GraphqlError::Schema(format!("type {name} implements {i}, not an interface")));
                }
            }
            for m in &t.members {
                if self.kind(m) != Some(Kind::Object) {
                    return Err(GraphqlError::Schema(format!("union {name} has member {m}, not an object type")));
                }
            }
        }
        for (i, root) in self.roots.iter().enumerate() {
            if let Some(root) = root
                && self.kind(root) != Some(Kind::Object)
            {
                return Err(GraphqlError::Schema(format!(
                    "the {} root {root} is not an object type",
                    DEFAULT_ROOTS[i]
                )));
            }
        }
        if self.roots[0].is_none() {
            return Err(GraphqlError::Schema("the schema has no query type".to_string()));
        }
        Ok(())
    }

    fn fill_possible_types(&mut self) {
        let mut possible: HashMap<String, HashSet<String>> = HashMap::new();
        for (name, t) in &self.types {
            match t.kind {
                Kind::Object => {
                    possible.entry(name.clone()).or_default().insert(name.clone());
                    for i in &t.implements {
                        possible.entry(i.clone()).or_default().insert(name.clone());
                    }
                }
                Kind::Union => possible.entry(name.clone()).or_default().extend(t.members.iter().cloned()),
                _ => {}
            }
        }
        for (name, set) in possible {
            if let Some(t) = self.types.get_mut(&name) {
                t.possible = set;
            }
        }
    }

    fn kind(&self, name: &str) -> Option<Kind> {
        self.types.get(name).map(|t| t.kind)
    }

    /// The root type of an operation type, if the schema has one.
    pub fn root_type(&self, op: OpType) -> Option<&str> {
        self.roots[op.index()].as_deref()
    }

    /// Whether `field` is a field of the root type of `op` (an operation of
    /// the API).
    pub fn is_root_field(&self, op: OpType, field: &str) -> bool {
        self.root_type(op).and_then(|r| self.types.get(r)).is_some_and(|t| t.fields.contains_key(field))
    }

    /// Whether a fragment on `cond` can apply where `parent` is expected.
    fn overlaps(&self, parent: &str, cond: &str) -> bool {
        if parent == cond {
            return true;
        }
        match (self.types.get(parent), self.types.get(cond)) {
            (Some(p), Some(c)) => !p.possible.is_disjoint(&c.possible),
            _ => false,
        }
    }
}

impl TypeDef {
    fn new(kind: Kind) -> TypeDef {
        TypeDef { kind, fields: HashMap::new(), implements: Vec::new(), members: Vec::new(), possible: HashSet::new() }
    }
}

/// What a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The chosen operation's type.
    pub operation_type: OpType,
    /// The root fields it selects (field names, not aliases; through
    /// fragments; deduplicated, in order of appearance; introspection fields
    /// left out, so an introspection-only query has none).
    pub root_fields: Vec<String>,
    /// Field levels, a root field being 1.
    pub depth: u32,
    /// Choreo Connect's complexity (saturating).
    pub complexity: u32,
}

/// Parses `query` once, chooses the operation, validates what the analysis
/// relies on and measures it. `variables` is the request's `variables`
/// object (anything else is taken as none).
pub fn analyse(
    schema: &GraphqlSchema,
    query: &str,
    operation_name: Option<&str>,
    variables: &Value,
) -> Result<Analysis, GraphqlError> {
    let doc = async_graphql_parser::parse_query(query).map_err(parse_error)?;
    let op = choose_operation(&doc, operation_name.filter(|n| !n.is_empty()))?;
    let mut walker = Walker {
        schema,
        doc: &doc,
        variables: variables.as_object(),
        defaults: op
            .variable_definitions
            .iter()
            .filter_map(|v| v.node.default_value.as_ref().map(|d| (v.node.name.node.as_str(), &d.node)))
            .collect(),
        fragments: HashMap::new(),
    };
    let order = fragment_order(&doc)?;
    for name in &order {
        walker.fragment(name)?;
    }
    check_fragments_used(&doc, &order)?;
    let mut chosen = None;
    for other in doc.operations.iter().map(|(_, o)| &o.node) {
        let root = root_of(schema, other.ty)?;
        let summary = walker.walk(&other.selection_set.node, root, 0)?;
        if std::ptr::eq(other, op) {
            chosen = Some(summary);
        }
    }
    let summary = chosen.unwrap_or_default();
    Ok(Analysis {
        operation_type: OpType::from_parser(op.ty),
        root_fields: root_fields(&doc, &op.selection_set.node),
        depth: summary.depth,
        complexity: u32::try_from(summary.complexity).unwrap_or(u32::MAX),
    })
}

/// Checks the depth, then the complexity, against the subscription policy's
/// limits (0: no limit).
pub fn check_limits(a: &Analysis, max_depth: u32, max_complexity: u32) -> Result<(), GraphqlDenial> {
    if max_depth > 0 && a.depth > max_depth {
        return Err(GraphqlDenial {
            code: QUERY_TOO_DEEP_CODE,
            message: QUERY_TOO_DEEP_MESSAGE,
            description: format!("[maximum query depth exceeded {} > {max_depth}]", a.depth),
        });
    }
    if max_complexity > 0 && a.complexity > max_complexity {
        return Err(GraphqlDenial {
            code: QUERY_TOO_COMPLEX_CODE,
            message: QUERY_TOO_COMPLEX_MESSAGE,
            description: QUERY_TOO_COMPLEX_DESCRIPTION.to_string(),
        });
    }
    Ok(())
}

fn parse_error(e: async_graphql_parser::Error) -> GraphqlError {
    use async_graphql_parser::Error as E;
    match e {
        E::Syntax { .. } | E::RecursionLimitExceeded => GraphqlError::Syntax(e.to_string()),
        E::MissingOperation => GraphqlError::Invalid("the document has no operation".to_string()),
        _ => GraphqlError::Invalid(e.to_string()),
    }
}

fn choose_operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Result<&'d OperationDefinition, GraphqlError> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Ok(&op.node),
        (DocumentOperations::Multiple(ops), None) => {
            let mut it = ops.values();
            match (it.next(), it.next()) {
                (Some(op), None) => Ok(&op.node),
                _ => Err(GraphqlError::Operation(
                    "Must provide operation name if query contains multiple operations.".to_string(),
                )),
            }
        }
        (DocumentOperations::Multiple(ops), Some(n)) if ops.contains_key(n) => Ok(&ops[n].node),
        (_, Some(n)) => Err(GraphqlError::Operation(format!("Unknown operation named '{n}'."))),
    }
}

fn root_of(schema: &GraphqlSchema, ty: OperationType) -> Result<&str, GraphqlError> {
    let op = OpType::from_parser(ty);
    schema.root_type(op).ok_or_else(|| {
        GraphqlError::Invalid(match op {
            OpType::Mutation => "Schema is not configured for mutations.".to_string(),
            OpType::Subscription => "Schema is not configured for subscriptions.".to_string(),
            OpType::Query => "Schema is not configured for queries.".to_string(),
        })
    })
}

/// Fragment spreads directly or deeply inside a selection set, in order.
fn spreads<'d>(set: &'d SelectionSet, out: &mut Vec<&'d str>) {
    let mut stack = vec![set];
    while let Some(set) = stack.pop() {
        for item in set.items.iter().rev() {
            match &item.node {
                Selection::Field(f) => stack.push(&f.node.selection_set.node),
                Selection::InlineFragment(i) => stack.push(&i.node.selection_set.node),
                Selection::FragmentSpread(s) => out.push(s.node.fragment_name.node.as_str()),
            }
        }
    }
}

/// The fragments in an order where each comes after those it spreads; a
/// spread of an undefined fragment or a cycle is an error. Iterative.
fn fragment_order(doc: &ExecutableDocument) -> Result<Vec<&str>, GraphqlError> {
    let mut names: Vec<(&str, &Positioned<FragmentDefinition>)> =
        doc.fragments.iter().map(|(n, f)| (n.as_str(), f)).collect();
    // Deterministic errors: in document order.
    names.sort_by_key(|(_, f)| (f.pos.line, f.pos.column));
    let mut deps: HashMap<&str, Vec<&str>> = HashMap::with_capacity(names.len());
    for (name, f) in &names {
        let mut out = Vec::new();
        spreads(&f.node.selection_set.node, &mut out);
        for s in &out {
            if !doc.fragments.contains_key(*s) {
                return Err(GraphqlError::Invalid(format!("Undefined fragment {s}")));
            }
        }
        deps.insert(name, out);
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::with_capacity(names.len());
    let mut order = Vec::with_capacity(names.len());
    for (start, _) in &names {
        if marks.contains_key(start) {
            continue;
        }
        // (fragment, index of the next dependency to visit)
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Open);
        while let Some((name, next)) = stack.last_mut() {
            let list = &deps[*name];
            if let Some(dep) = list.get(*next).copied() {
                *next += 1;
                match marks.get(dep) {
                    Some(Mark::Open) => {
                        return Err(GraphqlError::Invalid(format!("Fragment cycles not allowed (fragment {dep})")));
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(dep, Mark::Open);
                        stack.push((dep, 0));
                    }
                }
            } else {
                marks.insert(name, Mark::Done);
                order.push(*name);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// Every fragment must be spread by some operation, directly or through
/// other fragments.
fn check_fragments_used(doc: &ExecutableDocument, order: &[&str]) -> Result<(), GraphqlError> {
    let mut used: HashSet<&str> = HashSet::new();
    let mut todo: Vec<&str> = Vec::new();
    for (_, op) in doc.operations.iter() {
        spreads(&op.node.selection_set.node, &mut todo);
    }
    while let Some(name) = todo.pop() {
        if used.insert(name)
            && let Some(f) = doc.fragments.get(name)
        {
            spreads(&f.node.selection_set.node, &mut todo);
        }
    }
    match order.iter().find(|n| !used.contains(**n)) {
        Some(unused) => Err(GraphqlError::Invalid(format!("Unused fragment {unused}"))),
        None => Ok(()),
    }
}

/// The root fields of an operation, through fragments, in order of
/// appearance, deduplicated, introspection left out. Iterative; each
/// fragment is expanded once (a second expansion adds no new name).
fn root_fields(doc: &ExecutableDocument, set: &SelectionSet) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut expanded: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&Positioned<Selection>> = set.items.iter().rev().collect();
    while let Some(item) = stack.pop() {
        match &item.node {
            Selection::Field(f) => {
                let name = f.node.name.node.as_str();
                if !name.starts_with("__") && seen.insert(name) {
                    out.push(name.to_string());
                }
            }
            Selection::InlineFragment(i) => stack.extend(i.node.selection_set.node.items.iter().rev()),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                if expanded.insert(name)
                    && let Some(f) = doc.fragments.get(name)
                {
                    stack.extend(f.node.selection_set.node.items.iter().rev());
                }
            }
        }
    }
    out
}

/// Depth and complexity of a selection set.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    /// Field levels below (a field of the set being 1).
    depth: u32,
    /// Sum of the fields' values.
    complexity: u64,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.depth = self.depth.max(other.depth);
        self.complexity = self.complexity.saturating_add(other.complexity);
    }
}

struct Walker<'a> {
    schema: &'a GraphqlSchema,
    doc: &'a ExecutableDocument,
    variables: Option<&'a serde_json::Map<String, Value>>,
    defaults: HashMap<&'a str, &'a ConstValue>,
    /// Summaries of the fragments done so far (each on its type condition,
    /// so the same wherever it is spread).
    fragments: HashMap<&'a str, Summary>,
}

impl<'a> Walker<'a> {
    /// Measures a fragment whose dependencies are measured.
    fn fragment(&mut self, name: &'a str) -> Result<(), GraphqlError> {
        let Some(f) = self.doc.fragments.get(name) else { return Ok(()) };
        let cond = f.node.type_condition.node.on.node.as_str();
        match self.schema.kind(cond) {
            Some(k) if k.composite() => {}
            Some(_) => {
                return Err(GraphqlError::Invalid(format!(
                    "Fragment {name} cannot condition on non composite type {cond}"
                )));
            }
            None => return Err(GraphqlError::Invalid(format!("Unknown type {cond}"))),
        }
        let summary = self.walk(&f.node.selection_set.node, cond, 0)?;
        self.fragments.insert(name, summary);
        Ok(())
    }

    /// Validates and measures a selection set on `parent` (a composite
    /// type). Recursion is bounded by the nesting of the document; fragment
    /// spreads use the fragments' summaries.
    fn walk(&self, set: &'a SelectionSet, parent: &str, nesting: usize) -> Result<Summary, GraphqlError> {
        if nesting > MAX_NESTING {
            return Err(GraphqlError::Invalid(format!("selections nested more than {MAX_NESTING} levels")));
        }
        let Some(parent_def) = self.schema.types.get(parent) else {
            return Err(GraphqlError::Invalid(format!("Unknown type {parent}")));
        };
        let query_root = self.schema.roots[0].as_deref() == Some(parent);
        let mut summary = Summary::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let name = f.name.node.as_str();
                    let (ty, own) = match name {
                        "__typename" => (None, 0),
                        "__schema" if query_root => (Some("__Schema"), 1),
                        "__type" if query_root => (Some("__Type"), 1),
                        _ => match parent_def.fields.get(name) {
                            Some(def) => (Some(def.ty.as_str()), u64::from(def.complexity)),
                            None => {
                                return Err(GraphqlError::Invalid(format!(
                                    "Field '{name}' in type '{parent}' is undefined"
                                )));
                            }
                        },
                    };
                    let sub = &f.selection_set.node;
                    let composite = ty.and_then(|t| self.schema.kind(t)).is_some_and(Kind::composite);
                    let children = match (composite, sub.items.is_empty()) {
                        (true, false) => self.walk(sub, ty.unwrap_or(parent), nesting + 1)?,
                        (false, true) => Summary::default(),
                        (true, true) => {
                            return Err(GraphqlError::Invalid(format!(
                                "Sub selection required for type {} of field {name}",
                                ty.unwrap_or_default()
                            )));
                        }
                        (false, false) => {
                            return Err(GraphqlError::Invalid(format!(
                                "Sub selection not allowed on leaf type {} of field {name}",
                                ty.unwrap_or("String")
                            )));
                        }
                    };
                    if !self.included(&f.directives) {
                        continue;
                    }
                    // `__typename` is a level but costs nothing.
                    let value = if name == "__typename" {
                        0
                    } else {
                        self.arguments_value(&f.arguments).saturating_mul(own.saturating_add(children.complexity))
                    };
                    summary.add(Summary { depth: children.depth.saturating_add(1), complexity: value });
                }
                Selection::InlineFragment(i) => {
                    let i = &i.node;
                    let cond = i.type_condition.as_ref().map_or(parent, |c| c.node.on.node.as_str());
                    self.check_condition(parent, cond)?;
                    let inner = self.walk(&i.selection_set.node, cond, nesting + 1)?;
                    if self.included(&i.directives) {
                        summary.add(inner);
                    }
                }
                Selection::FragmentSpread(s) => {
                    let s = &s.node;
                    let name = s.fragment_name.node.as_str();
                    let Some(f) = self.doc.fragments.get(name) else {
                        return Err(GraphqlError::Invalid(format!("Undefined fragment {name}")));
                    };
                    self.check_condition(parent, f.node.type_condition.node.on.node.as_str())?;
                    // Measured before (dependencies first); absent only inside a cycle.
                    let Some(inner) = self.fragments.get(name).copied() else {
                        return Err(GraphqlError::Invalid(format!("Fragment cycles not allowed (fragment {name})")));
                    };
                    if self.included(&s.directives) {
                        summary.add(inner);
                    }
                }
            }
        }
        Ok(summary)
    }

    fn check_condition(&self, parent: &str, cond: &str) -> Result<(), GraphqlError> {
        match self.schema.kind(cond) {
            None => Err(GraphqlError::Invalid(format!("Unknown type {cond}"))),
            Some(k) if !k.composite() => {
                Err(GraphqlError::Invalid(format!("Fragment cannot condition on non composite type {cond}")))
            }
            Some(_) if !self.schema.overlaps(parent, cond) => Err(GraphqlError::Invalid(format!(
                "Fragment on {cond} cannot be spread here as objects of type {parent} can never be of type {cond}"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// `@skip(if:)` and `@include(if:)`; an `if` that cannot be read keeps
    /// the selection.
    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().all(|d| {
            let d = &d.node;
            let cond = || d.get_argument("if").and_then(|v| self.boolean(&v.node));
            match d.name.node.as_str() {
                "skip" => cond() != Some(true),
                "include" => cond() != Some(false),
                _ => true,
            }
        })
    }

    fn boolean(&self, v: &GqlValue) -> Option<bool> {
        match v {
            GqlValue::Boolean(b) => Some(*b),
            GqlValue::Variable(name) => match self.variables.and_then(|vars| vars.get(name.as_str())) {
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => None,
                None => match self.defaults.get(name.as_str()) {
                    Some(ConstValue::Boolean(b)) => Some(*b),
                    _ => None,
                },
            },
            _ => None,
        }
    }

    /// 1 without arguments; else the sum of the slicing arguments' values
    /// and 1 for each other argument.
    fn arguments_value(&self, arguments: &[(Positioned<Name>, Positioned<GqlValue>)]) -> u64 {
        if arguments.is_empty() {
            return 1;
        }
        arguments.iter().fold(0u64, |sum, (name, value)| {
            let n = name.node.as_str();
            let v =
                if SLICING_ARGUMENTS.iter().any(|s| n.eq_ignore_ascii_case(s)) { self.integer(&value.node) } else { 1 };
            sum.saturating_add(v)
        })
    }

    /// The value of a slicing argument: its integer (whole-number floats
    /// too, as GraphQL's Int coercion accepts), else 1: a value that cannot
    /// be read (null, missing, negative, not a number) must never zero a
    /// subtree's complexity.
    fn integer(&self, v: &GqlValue) -> u64 {
        let n = match v {
            GqlValue::Number(n) => json_count(n),
            GqlValue::Variable(name) => match self.variables.and_then(|vars| vars.get(name.as_str())) {
                Some(Value::Number(n)) => json_count(n),
                Some(_) => None,
                None => match self.defaults.get(name.as_str()) {
                    Some(ConstValue::Number(n)) => json_count(n),
                    _ => None,
                },
            },
            _ => None,
        };
        n.unwrap_or(1).max(1)
    }
}

/// A JSON number as a count: non-negative integers, and floats with no
/// fraction (saturating); anything else is unreadable.
fn json_count(n: &serde_json::Number) -> Option<u64> {
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    // `as` saturates at u64::MAX.
    (f >= 0.0 && f.fract() == 0.0).then_some(f as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SDL: &str = r#"
        schema { query: Query mutation: Mutation }
        interface Character { id: ID! name: String friends(first: Int, after: String): [Character] }
        type Human implements Character { id: ID! name: String friends(first: Int, after: String): [Character] height: Float }
        type Droid implements Character { id: ID! name: String friends(first: Int, after: String): [Character] primaryFunction: String }
        union SearchResult = Human | Droid
        enum Episode { NEWHOPE EMPIRE JEDI }
        type Location { village: String planet: String }
        type Hero { id: ID! name: String age: Int location: Location }
        type Query {
            hero(episode: Episode): Hero
            character(id: ID!): Character
            characters(first: Int, last: Int, limit: Int, after: String): [Character!]!
            search(text: String!): [SearchResult]
            address: [Location]
            hello: String
        }
        type Mutation { createHero(name: String!): Hero deleteHero(id: ID!): Boolean }
    "#;

    fn schema() -> GraphqlSchema {
        GraphqlSchema::parse(SDL, &[]).expect("schema")
    }

    fn run(q: &str) -> Result<Analysis, GraphqlError> {
        analyse(&schema(), q, None, &Value::Null)
    }

    fn ok(q: &str) -> Analysis {
        run(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn roots(a: &Analysis) -> Vec<&str> {
        a.root_fields.iter().map(String::as_str).collect()
    }

    #[test]
    fn simple_query() {
        let a = ok("{ hero { name } }");
        assert_eq!(a.operation_type, OpType::Query);
        assert_eq!(roots(&a), ["hero"]);
        assert_eq!(a.depth, 2);
        assert_eq!(a.complexity, 2);
    }

    #[test]
    fn aliases_resolve_to_field_names_and_deduplicate() {
        let a = ok("{ a: hero { name } b: hero { id } hello greeting: hello }");
        assert_eq!(roots(&a), ["hero", "hello"]);
        // Each selection counts: 2 + 2 + 1 + 1.
        assert_eq!(a.complexity, 6);
    }

    #[test]
    fn fragments_and_inline_fragments_are_expanded() {
        let a = ok("query { ...Top ... on Query { address { planet } } hello }
                    fragment Top on Query { hero { ...HeroBits } }
                    fragment HeroBits on Hero { name location { village } }");
        assert_eq!(roots(&a), ["hero", "address", "hello"]);
        assert_eq!(a.depth, 3, "fragments add no level");
        // hero(1 + name 1 + location(1 + village 1)) + address(1 + 1) + hello 1
        assert_eq!(a.complexity, 4 + 2 + 1);
        let a = ok("{ character(id: 1) { ... on Human { height } ... on Droid { primaryFunction } __typename } }");
        assert_eq!(roots(&a), ["character"]);
        assert_eq!(a.depth, 2);
        assert_eq!(a.complexity, 3, "__typename costs nothing");
    }

    #[test]
    fn named_operation_is_chosen() {
        let q = "query A { hero { name } } query B { address { planet village } } mutation C { deleteHero(id: 1) }";
        let s = schema();
        let b = analyse(&s, q, Some("B"), &Value::Null).expect("B");
        assert_eq!((b.operation_type, roots(&b)), (OpType::Query, vec!["address"]));
        assert_eq!(b.complexity, 3);
        let c = analyse(&s, q, Some("C"), &Value::Null).expect("C");
        assert_eq!((c.operation_type, roots(&c)), (OpType::Mutation, vec!["deleteHero"]));
        let e = analyse(&s, q, None, &Value::Null).expect_err("no name");
        assert_eq!(e.description(), "Must provide operation name if query contains multiple operations.");
        let e = analyse(&s, q, Some("D"), &Value::Null).expect_err("unknown name");
        assert_eq!(e.description(), "Unknown operation named 'D'.");
        assert_eq!(e.denial().code, "900422");
        // One named operation needs no name; an empty name is no name.
        assert_eq!(roots(&analyse(&s, "query A { hello }", Some(""), &Value::Null).expect("A")), ["hello"]);
        let e = analyse(&s, "{ hello }", Some("A"), &Value::Null).expect_err("anonymous");
        assert_eq!(e.description(), "Unknown operation named 'A'.");
    }

    #[test]
    fn mutation_root_fields() {
        let a = ok("mutation { createHero(name: \"x\") { id name } deleteHero(id: 1) }");
        assert_eq!(a.operation_type, OpType::Mutation);
        assert_eq!(roots(&a), ["createHero", "deleteHero"]);
        assert_eq!(a.depth, 2);
        // createHero: 1 argument × (1 + 2); deleteHero: 1
        assert_eq!(a.complexity, 4);
        // A query cannot reach mutation fields through a fragment.
        let e = run("{ ... on Mutation { deleteHero(id: 1) } }").expect_err("mutation in query");
        assert!(matches!(e, GraphqlError::Invalid(_)), "{e}");
        let e = run("subscription { hello }").expect_err("no subscription root");
        assert_eq!(e, GraphqlError::Invalid("Schema is not configured for subscriptions.".into()));
    }

    #[test]
    fn depth_counts_root_as_one_and_introspection_fields() {
        assert_eq!(ok("{ hello }").depth, 1);
        assert_eq!(ok("{ hero { age name location { village planet } } }").depth, 3);
        assert_eq!(ok("{ hero { __typename } }").depth, 2);
        let a = ok("{ __schema { types { name fields { name type { name } } } } }");
        assert!(a.root_fields.is_empty(), "introspection is no operation");
        assert_eq!(a.depth, 5);
        // __schema(1 + types(1 + name 1 + fields(1 + name 1 + type(1 + name 1))))
        assert_eq!(a.complexity, 7);
        let a = ok("{ __typename hero { name } }");
        assert_eq!((roots(&a), a.depth, a.complexity), (vec!["hero"], 2, 2));
        // __schema and __type only on the query root
        assert!(run("mutation { __schema { types { name } } }").is_err());
        assert!(run("{ hero { __type(name: \"Hero\") { name } } }").is_err());
    }

    #[test]
    fn skip_and_include_follow_variables() {
        let s = schema();
        let q = "query Q($d: Boolean!, $e: Boolean = false) {
                   hero { name location @include(if: $d) { planet } age @skip(if: true) id @include(if: $e) } }";
        let with = analyse(&s, q, None, &json!({"d": true})).expect("with");
        assert_eq!((with.depth, with.complexity), (3, 1 + 1 + 2));
        let without = analyse(&s, q, None, &json!({"d": false})).expect("without");
        assert_eq!((without.depth, without.complexity), (2, 2));
        // An `if` that cannot be read keeps the selection.
        let unknown = analyse(&s, q, None, &Value::Null).expect("unknown");
        assert_eq!(unknown.depth, 3);
    }

    #[test]
    fn complexity_defaults_and_yaml_entries() {
        let entries = [
            FieldComplexity { type_name: "Query".into(), field: "hello".into(), value: 10 },
            FieldComplexity { type_name: "Location".into(), field: "village".into(), value: 2 },
            FieldComplexity { type_name: "Character".into(), field: "name".into(), value: 5 },
            FieldComplexity { type_name: "Human".into(), field: "name".into(), value: 7 },
            FieldComplexity { type_name: "Nope".into(), field: "x".into(), value: 99 },
        ];
        let s = GraphqlSchema::parse(SDL, &entries).expect("schema");
        let a = |q: &str| analyse(&s, q, None, &Value::Null).expect("analysis").complexity;
        assert_eq!(a("{ hello }"), 10);
        assert_eq!(a("{ hero { location { village planet } } }"), 1 + 1 + 2 + 1);
        // The type a field is selected on: the interface, or the fragment's type.
        assert_eq!(a("{ character(id: 1) { name } }"), 1 + 5);
        assert_eq!(a("{ character(id: 1) { ... on Human { name } } }"), 1 + 7);
        assert_eq!(a("{ character(id: 1) { ...H } } fragment H on Human { name }"), 1 + 7);
    }

    #[test]
    fn slicing_arguments_multiply() {
        let s = schema();
        let a = |q: &str, v: Value| analyse(&s, q, None, &v).expect("analysis").complexity;
        // first: 10 → 10 × (1 + name 1)
        assert_eq!(a("{ characters(first: 10) { name } }", Value::Null), 20);
        // first + after: 10 + 1
        assert_eq!(a("{ characters(first: 10, after: \"x\") { name } }", Value::Null), 22);
        assert_eq!(a("{ characters(LIMIT: 3, last: 2) { id } }", Value::Null), 10);
        // Nested: 2 × (1 + 3 × (1 + 1))
        assert_eq!(a("{ characters(first: 2) { friends(first: 3) { name } } }", Value::Null), 14);
        // A non-slicing argument counts 1; so does a slicing value that
        // cannot be read (null, negative): nothing zeroes a subtree.
        assert_eq!(a("{ character(id: 5) { name } }", Value::Null), 2);
        assert_eq!(a("{ characters(first: null) { name } }", Value::Null), 2);
        assert_eq!(a("{ characters(first: -5) { name } }", Value::Null), 2);
        assert_eq!(a("query Q($n: Int) { characters(first: $n) { name } }", json!({"n": null})), 2);
        // Whole-number floats are integers (GraphQL's Int coercion).
        assert_eq!(a("query Q($n: Int) { characters(first: $n) { name } }", json!({"n": 1e3})), 2000);
        // Variables count their value, else their default, else 0.
        let q = "query Q($n: Int = 4) { characters(first: $n) { name } }";
        assert_eq!(a(q, json!({"n": 50})), 100);
        assert_eq!(a(q, Value::Null), 8);
        assert_eq!(a("query Q($n: Int) { characters(first: $n) { name } }", json!({})), 2);
        // Saturates instead of wrapping.
        assert_eq!(
            a("{ characters(first: 4294967295) { friends(first: 4294967295) { name } } }", Value::Null),
            u32::MAX
        );
    }

    #[test]
    fn fragment_cycles_are_invalid() {
        let e = run("{ hero { ...A } } fragment A on Hero { ...A }").expect_err("self");
        assert_eq!(e.description(), "Payload is invalid");
        assert!(e.to_string().contains("Fragment cycles not allowed"), "{e}");
        let e =
            run("{ hero { ...A } } fragment A on Hero { name ...B } fragment B on Hero { location { village } ...A }")
                .expect_err("pair");
        assert!(e.to_string().contains("Fragment cycles not allowed"), "{e}");
        // An unused cycle is invalid too.
        assert!(run("{ hello } fragment A on Hero { ...A }").is_err());
    }

    #[test]
    fn fragment_expansion_is_linear() {
        // Each fragment spreads the previous one twice: 2^40 fields if expanded
        // naively; measured once per fragment.
        let mut q = String::from("{ hero { ...F40 } } fragment F0 on Hero { name }");
        for i in 1..=40 {
            q.push_str(&format!(" fragment F{i} on Hero {{ ...F{p} ...F{p} }}", p = i - 1));
        }
        let a = ok(&q);
        assert_eq!(a.depth, 2);
        assert_eq!(a.complexity, u32::MAX, "1 + 2^40 saturates");
    }

    #[test]
    fn invalid_queries() {
        let e = run("{ hero { name }").expect_err("syntax");
        assert!(matches!(e, GraphqlError::Syntax(ref m) if !m.is_empty()), "{e}");
        assert_eq!(e.description(), "Invalid syntax");
        let d = e.denial();
        assert_eq!((d.code, d.message, d.description.as_str()), ("900422", "INVALID QUERY", "Invalid syntax"));
        for (q, why) in [
            ("{ nope }", "Field 'nope' in type 'Query' is undefined"),
            ("{ hero { nope } }", "Field 'nope' in type 'Hero' is undefined"),
            ("{ hero }", "Sub selection required for type Hero of field hero"),
            ("{ hello { x } }", "Sub selection not allowed on leaf type String of field hello"),
            ("{ hero { ...X } }", "Undefined fragment X"),
            ("{ hello } fragment X on Hero { name }", "Unused fragment X"),
            ("{ hero { ... on Nope { name } } }", "Unknown type Nope"),
            ("{ search(text: \"x\") { name } }", "Field 'name' in type 'SearchResult' is undefined"),
        ] {
            let e = run(q).expect_err(q);
            assert_eq!(e, GraphqlError::Invalid(why.to_string()), "{q}");
            assert_eq!(e.description(), "Payload is invalid");
        }
        // Unions: members through inline fragments.
        assert_eq!(ok("{ search(text: \"x\") { __typename ... on Droid { name } } }").depth, 2);
        // An anonymous operation next to another: invalid, as in GraphQL.
        assert!(matches!(run("{ hello } query B { hello }"), Err(GraphqlError::Invalid(_))));
        // Too deeply nested for the parser: a syntax error.
        let deep = format!("{{ {} hello {} }}", "hero { location { ".repeat(40), "} } ".repeat(40));
        assert!(matches!(run(&deep), Err(GraphqlError::Syntax(_))));
    }

    #[test]
    fn limits_with_exact_descriptions() {
        let a = Analysis { operation_type: OpType::Query, root_fields: vec!["hero".into()], depth: 3, complexity: 11 };
        assert_eq!(check_limits(&a, 0, 0), Ok(()));
        assert_eq!(check_limits(&a, 3, 11), Ok(()));
        let d = check_limits(&a, 2, 5).expect_err("deep first");
        assert_eq!(
            (d.code, d.message, d.description.as_str()),
            ("900820", "QUERY TOO DEEP", "[maximum query depth exceeded 3 > 2]")
        );
        let d = check_limits(&a, 0, 10).expect_err("complex");
        assert_eq!(
            (d.code, d.message, d.description.as_str()),
            ("900821", "QUERY TOO COMPLEX", "[maximum query complexity exceeded]")
        );
        let deny: Deny = d.into();
        assert_eq!(deny.status, 400);
        assert_eq!(
            deny.body(),
            r#"{"error_message":"QUERY TOO COMPLEX","code":"900821","error_description":"[maximum query complexity exceeded]"}"#
        );
    }

    #[test]
    fn request_bodies() {
        let r =
            GraphqlRequest::from_body(None, r#"{"query":"query A { hello }","operationName":"A","variables":{"n":1}}"#)
                .expect("json");
        assert_eq!(r.query, "query A { hello }");
        assert_eq!(r.operation_name.as_deref(), Some("A"));
        assert_eq!(r.variables, json!({"n": 1}));
        let r = GraphqlRequest::from_body(
            Some("Application/JSON; charset=utf-8"),
            r#"{"query":"{ hello }","variables":null}"#,
        )
        .expect("json with charset");
        assert_eq!((r.operation_name, r.variables), (None, Value::Null));
        let r = GraphqlRequest::from_body(Some("application/graphql"), "{ hello }").expect("graphql");
        assert_eq!(r.query, "{ hello }");
        for (ct, body, why) in [
            (None, "{ hello }", BAD_BODY_DESCRIPTION),
            (Some("application/json"), r#"{"query": 1}"#, BAD_BODY_DESCRIPTION),
            (Some("application/json"), "", BAD_BODY_DESCRIPTION),
            (Some("text/plain"), "{ hello }", BAD_CONTENT_TYPE_DESCRIPTION),
            (Some("application/json"), r#"{"query":"  "}"#, EMPTY_QUERY_DESCRIPTION),
        ] {
            let e = GraphqlRequest::from_body(ct, body).expect_err(body);
            assert_eq!(e.description(), why, "{body}");
            assert_eq!(e.denial().code, "900422");
        }
    }

    #[test]
    fn schema_roots_and_problems() {
        let s = GraphqlSchema::parse("type Query { a: String } type Mutation { b: Int }", &[]).expect("defaults");
        assert_eq!((s.root_type(OpType::Query), s.root_type(OpType::Mutation)), (Some("Query"), Some("Mutation")));
        assert_eq!(s.root_type(OpType::Subscription), None);
        assert!(s.is_root_field(OpType::Mutation, "b") && !s.is_root_field(OpType::Query, "b"));
        let s = GraphqlSchema::parse("schema { query: Root } type Root { a: String } extend type Root { b: Int }", &[])
            .expect("explicit root, extension");
        assert_eq!(roots(&analyse(&s, "{ b a }", None, &Value::Null).expect("analysis")), ["b", "a"]);
        for bad in [
            "type Query { a: Nope }",
            "type Mutation { a: Int }",
            "type Query { a: Int } type Query { b: Int }",
            "type Query {",
        ] {
            assert!(matches!(GraphqlSchema::parse(bad, &[]), Err(GraphqlError::Schema(_))), "{bad}");
        }
    }
}
