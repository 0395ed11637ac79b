//! Choreo Connect API projects (the apictl format), parsed and validated
//! into a typed model, without I/O.
//!
//! The caller hands over the project's files ([`ProjectFiles`], read from a
//! directory or a zip) and the router settings parsing depends on
//! ([`ParseOptions`]); [`parse_project`] returns the [`Project`] or every
//! [`Problem`] found, each naming the file, the field and the reason.
//!
//! The rules are Choreo Connect's (README.md, "API projects"):
//! api.yaml, then the OpenAPI definition's `basePath`/`host` or `servers`,
//! then the `x-wso2-*` extensions, then endpoint overrides from the
//! environment. Where Choreo Connect silently ignores a malformed value,
//! this parser refuses the project and says why.

mod apiyaml;
mod assemble;
mod asyncapi;
mod builtin_policies;
mod endpoint;
mod files;
mod gotemplate;
pub mod graphql;
mod mediation;
pub mod model;
mod openapi;
mod operation_policy;
pub mod policy;
mod problem;
mod value;

pub use assemble::{ParseOptions, check_pem_certificates, name_version_hash, parse_project, path_params, uri_vars};
pub use endpoint::{is_ip, parse_endpoint_url};
pub use files::{ProjectFiles, ZipLimits};
pub use model::*;
pub use problem::{Problem, Problems};

/// `name` when it names a throttling tier (a built-in API Manager policy,
/// `<n>Per<Unit>` (common/config/src/policies.rs) or an advanced policy
/// deployed in the catalogue), else a problem at `field`: a request could
/// otherwise never be counted against it.
fn known_tier(ctx: &mut problem::Ctx<'_>, field: &str, name: String) -> Option<String> {
    if gateway_config::policies::tier(&name).is_some() || ctx.tiers.is_some_and(|t| t.contains(&name)) {
        Some(name)
    } else {
        ctx.err(
            field,
            format!(
                "unknown throttling tier {name:?}: use a built-in policy (Unlimited, Gold, Silver, Bronze, \
                 Unauthenticated, 10KPerMin, 20KPerMin, 50KPerMin, 10PerMin, 20PerMin, 50PerMin), \
                 <count>Per<Sec|Min|Hour|Day>, or an advanced policy deployed first \
                 (apictl import policy rate-limiting)"
            ),
        );
        None
    }
}

#[cfg(test)]
mod mediation_tests;
#[cfg(test)]
mod tests;
