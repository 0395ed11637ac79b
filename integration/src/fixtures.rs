//! Fixtures several test files share: the Pets API's definition and the
//! claims of a token subscribed to it.

use serde_json::{Value, json};

use crate::IDP_ISSUER;
use crate::tokens::now;

/// The Pets API: `GET /pets`, secured.
pub const PETS_OAS: &str = r#"
openapi: 3.0.1
info: { title: Pets, version: "1.0" }
paths:
  /pets:
    get: {}
"#;

/// Claims of a JWT from the IdP issuer ([`IDP_ISSUER`]) for alice's PetApp,
/// subscribed to Pets 1.0 (`/pets/1.0`), valid for ten minutes.
pub fn pets_claims(jti: &str) -> Value {
    json!({
        "iss": IDP_ISSUER, "sub": "alice", "azp": "c1", "exp": now() + 600, "iat": now(), "jti": jti,
        "application": {"id": 1, "uuid": "app-1", "name": "PetApp", "owner": "alice"},
        "subscribedAPIs": [{"name": "Pets", "version": "1.0", "context": "/pets/1.0", "subscriptionTier": "Gold"}],
    })
}
