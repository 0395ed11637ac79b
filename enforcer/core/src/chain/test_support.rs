//! The filters' own fixture: the [`Context`] a filter runs on, built from
//! the shared settings, Pets and request of [`crate::testkit`], the callers
//! the authentication filter leaves, and assertions on [`Outcome`]s.

use std::path::Path;
use std::sync::Arc;

use gateway_proto::api as pa;
use gateway_proto::config as pc;
use serde_json::{Map, Value};

use super::{Authed, Context, Outcome};
use crate::apis::ApiIndex;
use crate::decision::{AuthInfo, AuthType};
use crate::deny::Deny;
use crate::memory::{Memory, Revoked};
use crate::settings::{NoFetch, Settings};
use crate::testkit::{Req, payload, pets_api, settings_with};
use crate::token::TokenInfo;

// ---------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------

/// Settings, one API and the memory a [`Context`] borrows.
pub(crate) struct Fx {
    pub(crate) settings: Settings,
    pub(crate) apis: ApiIndex,
    pub(crate) memory: Memory,
    _dir: tempfile::TempDir,
}

impl Fx {
    /// The base configuration and Pets.
    pub(crate) fn new() -> Fx {
        Fx::build(|_, _| {}, pets_api())
    }

    /// The base configuration and this API.
    pub(crate) fn api(api: pa::Api) -> Fx {
        Fx::build(|_, _| {}, api)
    }

    /// The base configuration changed by `edit`, and Pets.
    pub(crate) fn config(edit: impl FnOnce(&mut pc::Config, &Path)) -> Fx {
        Fx::build(edit, pets_api())
    }

    /// The base configuration changed by `edit`, and `api`.
    pub(crate) fn build(edit: impl FnOnce(&mut pc::Config, &Path), api: pa::Api) -> Fx {
        let (settings, dir) = settings_with(Arc::new(NoFetch), edit);
        let apis = ApiIndex::new(vec![api]).expect("API");
        // As the engine installs a configuration and the revoked tokens.
        let memory = Memory::new();
        memory.reset(settings.cache);
        memory.set_revoked(Revoked::new());
        Fx { settings, apis, memory, _dir: dir }
    }

    /// The context the chain would build for `r`: the API its route names,
    /// the resource of its template, the operation of its method (none for
    /// an OPTIONS the resource does not declare).
    pub(crate) fn cx<'a>(&'a self, r: &'a Req) -> Context<'a> {
        let input = r.input();
        let api =
            self.apis.find(input.ext("vHost"), input.ext("basePath"), input.ext("version")).expect("the route's API");
        let resource = api.resources.get(&r.template).expect("the route's resource");
        let info = AuthInfo {
            api_id: api.raw.id.clone(),
            api_name: api.raw.title.clone(),
            api_version: api.raw.version.clone(),
            api_context: api.raw.base_path.clone(),
            api_type: api.raw.api_type.clone(),
            resource: r.template.clone(),
            ..Default::default()
        };
        Context::new(&self.memory, &self.settings, input, api, resource, resource.operation(&r.method), info)
    }
}

// ---------------------------------------------------------------------------
// Callers
// ---------------------------------------------------------------------------

/// A caller without a token, as the authentication filter leaves it.
pub(crate) fn caller(auth_type: AuthType, key_type: &str) -> Authed {
    Authed {
        token: None,
        auth_type,
        key_type: key_type.into(),
        app_name: String::new(),
        app_id: String::new(),
        app_owner: String::new(),
        tier: String::new(),
        raw: String::new(),
        api_key_query: None,
    }
}

/// A caller let in with the token `raw` (its claims taken as they are, the
/// signature not checked), issued by the issuer named `issuer`.
pub(crate) fn token_caller(raw: &str, auth_type: AuthType, issuer: &str) -> Authed {
    let Value::Object(claims) = payload(raw) else { panic!("claims must be an object") };
    let claims: Map<String, Value> = claims;
    let signature = raw.rsplit('.').next().expect("signature");
    let info = Arc::new(TokenInfo::from_claims(signature, &claims, issuer.into(), "azp"));
    Authed { key_type: info.key_type().to_string(), token: Some(info), raw: raw.into(), ..caller(auth_type, "") }
}

// ---------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------

/// The request goes on.
#[track_caller]
pub(crate) fn assert_next(o: Outcome) {
    if let Outcome::Refuse(d) = o {
        panic!("expected Next, got {} {} {:?}: {}", d.status, d.code, d.message, d.description);
    }
}

/// The request is refused: why.
#[track_caller]
pub(crate) fn refused(o: Outcome) -> Deny {
    match o {
        Outcome::Refuse(d) => d,
        Outcome::Next => panic!("expected a refusal, got Next"),
    }
}

/// Refused with this status, code and description.
#[track_caller]
pub(crate) fn assert_refused(o: Outcome, status: u16, code: &str, description: &str) -> Deny {
    let d = refused(o);
    assert_eq!((d.status, d.code, d.description.as_ref()), (status, code, description), "message {:?}", d.message);
    d
}

/// Refused with 401 / 900901 / `Invalid Credentials` and this description.
#[track_caller]
pub(crate) fn assert_401(o: Outcome, description: &str) -> Deny {
    let d = assert_refused(o, 401, "900901", description);
    assert_eq!(d.message, "Invalid Credentials");
    d
}
