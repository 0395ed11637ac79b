//! The xDS resource types the adapter serves.

use std::fmt;

/// The xDS resource types the adapter serves, in the order they must reach
/// Envoy (clusters before the endpoints that fill them, both before the
/// listeners and routes that use them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum ResourceType {
    /// CDS: `envoy.config.cluster.v3.Cluster`
    Cluster,
    /// EDS: `envoy.config.endpoint.v3.ClusterLoadAssignment`
    Endpoint,
    /// LDS: `envoy.config.listener.v3.Listener`
    Listener,
    /// SRDS: `envoy.config.route.v3.ScopedRouteConfiguration`
    ScopedRoute,
    /// RDS: `envoy.config.route.v3.RouteConfiguration`
    Route,
}

impl ResourceType {
    /// All types in push order.
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::ScopedRoute,
        ResourceType::Route,
    ];

    /// The type URL used on the wire.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::ScopedRoute => "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    /// The type for a type URL, if served.
    pub fn from_type_url(url: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Types whose subscription is "everything" (state-of-the-world responses
    /// must then carry the whole set). The others are subscribed by name.
    pub fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener | ResourceType::ScopedRoute)
    }

    /// Types that decide which cluster a request goes to: a cluster may only
    /// be removed once the client holds the current version of all of these.
    pub fn carries_routes(self) -> bool {
        matches!(self, ResourceType::Listener | ResourceType::ScopedRoute | ResourceType::Route)
    }

    /// Position in [`ResourceType::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Short name for logs and reports (`cds`, `eds`, `lds`, `srds`, `rds`).
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "cds",
            ResourceType::Endpoint => "eds",
            ResourceType::Listener => "lds",
            ResourceType::ScopedRoute => "srds",
            ResourceType::Route => "rds",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}
