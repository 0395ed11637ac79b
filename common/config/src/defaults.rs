//! Defaults the configuration's tables share (Choreo Connect's).

/// Default location of the router/adapter development keystore in Choreo
/// Connect's container images.
pub const DEFAULT_KEYSTORE_CERT: &str = "/home/wso2/security/keystore/mg.pem";
/// Default private key path, see [`DEFAULT_KEYSTORE_CERT`].
pub const DEFAULT_KEYSTORE_KEY: &str = "/home/wso2/security/keystore/mg.key";
/// The gateway environment (label) used when a project names none.
pub const DEFAULT_ENVIRONMENT: &str = "Default";
/// The vhost of [`DEFAULT_ENVIRONMENT`] when `[[adapter.vhostMapping]]` has none.
pub const DEFAULT_VHOST: &str = "localhost";
