//! Canonical protobuf bytes for the resources the adapter builds.
//!
//! prost encodes `map` fields in `HashMap` iteration order, which differs
//! between map instances and between processes. Resource versions are hashes
//! of the encoded bytes, so the same content must always encode the same way:
//! this module rewrites an encoding with every map field's entries sorted by
//! key (as protobuf's "deterministic serialization" does), recursing through
//! the message fields and `Any` payloads that can contain maps. Everything
//! else is copied byte for byte. The schema below lists exactly those paths.

use crate::resource_type::ResourceType;

#[derive(Clone, Copy)]
enum Kind {
    /// A nested message.
    Msg(fn() -> Schema),
    /// A `map<string, V>` field.
    Map(Value),
    /// A `google.protobuf.Any`.
    Any,
}

#[derive(Clone, Copy)]
enum Value {
    /// Strings, numbers: copied.
    Plain,
    Msg(fn() -> Schema),
    Any,
}

type Schema = &'static [(u32, Kind)];

fn struct_() -> Schema {
    &[(1, Kind::Map(Value::Msg(value)))]
}
fn value() -> Schema {
    &[(5, Kind::Msg(struct_)), (6, Kind::Msg(list_value))]
}
fn list_value() -> Schema {
    &[(1, Kind::Msg(value))]
}
fn metadata() -> Schema {
    &[(1, Kind::Map(Value::Msg(struct_))), (2, Kind::Map(Value::Any))]
}
fn route() -> Schema {
    &[(4, Kind::Msg(metadata)), (13, Kind::Map(Value::Any))]
}
fn virtual_host() -> Schema {
    &[(3, Kind::Msg(route)), (15, Kind::Map(Value::Any))]
}
fn route_configuration() -> Schema {
    &[(2, Kind::Msg(virtual_host)), (16, Kind::Map(Value::Any))]
}
fn check_settings() -> Schema {
    &[(1, Kind::Map(Value::Plain))]
}
fn ext_authz_per_route() -> Schema {
    &[(2, Kind::Msg(check_settings))]
}
fn lb_endpoint() -> Schema {
    &[(3, Kind::Msg(metadata))]
}
fn locality_lb_endpoints() -> Schema {
    &[(2, Kind::Msg(lb_endpoint))]
}
fn cluster_load_assignment() -> Schema {
    &[(2, Kind::Msg(locality_lb_endpoints))]
}
fn transport_socket_match() -> Schema {
    &[(2, Kind::Msg(struct_))]
}
fn cluster() -> Schema {
    &[
        (25, Kind::Msg(metadata)),
        (33, Kind::Msg(cluster_load_assignment)),
        (36, Kind::Map(Value::Any)),
        (43, Kind::Msg(transport_socket_match)),
    ]
}
fn substitution_format_string() -> Schema {
    &[(2, Kind::Msg(struct_))]
}
fn response_mapper() -> Schema {
    &[(4, Kind::Msg(substitution_format_string))]
}
fn local_reply_config() -> Schema {
    &[(1, Kind::Msg(response_mapper)), (2, Kind::Msg(substitution_format_string))]
}
fn http_connection_manager() -> Schema {
    &[(38, Kind::Msg(local_reply_config))]
}
fn filter() -> Schema {
    &[(4, Kind::Any)]
}
fn filter_chain() -> Schema {
    &[(3, Kind::Msg(filter))]
}
fn listener() -> Schema {
    &[(3, Kind::Msg(filter_chain))]
}
fn none() -> Schema {
    &[]
}

/// The schema of an `Any` payload, by type URL.
fn any_schema(type_url: &[u8]) -> Schema {
    match type_url {
        b"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" => {
            http_connection_manager()
        }
        b"type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute" => ext_authz_per_route(),
        b"type.googleapis.com/google.protobuf.Struct" => struct_(),
        _ => none(),
    }
}

fn top_schema(ty: ResourceType) -> Schema {
    match ty {
        ResourceType::Cluster => cluster(),
        ResourceType::Endpoint => cluster_load_assignment(),
        ResourceType::Listener => listener(),
        ResourceType::ScopedRoute => none(),
        ResourceType::Route => route_configuration(),
    }
}

/// Rewrites the encoding of a resource of type `ty` into canonical form.
pub fn canonicalize(ty: ResourceType, bytes: &[u8]) -> Vec<u8> {
    let schema = top_schema(ty);
    if schema.is_empty() {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    match message(bytes, schema, &mut out) {
        Ok(()) => out,
        // Not reachable for bytes prost produced; fall back to the input.
        Err(()) => bytes.to_vec(),
    }
}

struct Field<'a> {
    tag: u32,
    /// The whole field, key included.
    raw: &'a [u8],
    /// For length-delimited fields: the payload.
    payload: Option<&'a [u8]>,
}

fn read_varint(b: &[u8], pos: &mut usize) -> Result<u64, ()> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or(())?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(())
}

fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, ()> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let start = pos;
        let key = read_varint(b, &mut pos)?;
        let tag = u32::try_from(key >> 3).map_err(|_| ())?;
        let payload = match key & 7 {
            0 => {
                read_varint(b, &mut pos)?;
                None
            }
            1 => {
                pos += 8;
                None
            }
            5 => {
                pos += 4;
                None
            }
            2 => {
                let len = usize::try_from(read_varint(b, &mut pos)?).map_err(|_| ())?;
                let s = pos;
                pos = pos.checked_add(len).ok_or(())?;
                Some(b.get(s..pos).ok_or(())?)
            }
            _ => return Err(()),
        };
        if pos > b.len() {
            return Err(());
        }
        out.push(Field { tag, raw: &b[start..pos], payload });
    }
    Ok(out)
}

fn emit_len_delimited(tag: u32, payload: &[u8], out: &mut Vec<u8>) {
    write_varint((u64::from(tag) << 3) | 2, out);
    write_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn message(b: &[u8], schema: Schema, out: &mut Vec<u8>) -> Result<(), ()> {
    let fs = fields(b)?;
    let mut maps_done: Vec<u32> = Vec::new();
    for f in &fs {
        let kind = schema.iter().find(|(t, _)| *t == f.tag).map(|(_, k)| *k);
        match (kind, f.payload) {
            (Some(Kind::Msg(sub)), Some(p)) => {
                let mut inner = Vec::with_capacity(p.len());
                message(p, sub(), &mut inner)?;
                emit_len_delimited(f.tag, &inner, out);
            }
            (Some(Kind::Any), Some(p)) => {
                let mut inner = Vec::with_capacity(p.len());
                any(p, &mut inner)?;
                emit_len_delimited(f.tag, &inner, out);
            }
            (Some(Kind::Map(v)), Some(_)) => {
                if maps_done.contains(&f.tag) {
                    continue;
                }
                maps_done.push(f.tag);
                let mut entries = Vec::new();
                for e in fs.iter().filter(|e| e.tag == f.tag) {
                    let p = e.payload.ok_or(())?;
                    entries.push(map_entry(p, v)?);
                }
                entries.sort();
                for (_, entry) in entries {
                    emit_len_delimited(f.tag, &entry, out);
                }
            }
            _ => out.extend_from_slice(f.raw),
        }
    }
    Ok(())
}

/// A map entry as (key bytes, canonical entry bytes).
fn map_entry(p: &[u8], v: Value) -> Result<(Vec<u8>, Vec<u8>), ()> {
    let fs = fields(p)?;
    let key = fs.iter().find(|f| f.tag == 1);
    let val = fs.iter().find(|f| f.tag == 2);
    let mut entry = Vec::with_capacity(p.len());
    let key_bytes = match key {
        Some(k) => {
            entry.extend_from_slice(k.raw);
            k.payload.map(<[u8]>::to_vec).unwrap_or_default()
        }
        None => Vec::new(),
    };
    if let Some(val) = val {
        match (v, val.payload) {
            (Value::Msg(sub), Some(vp)) => {
                let mut inner = Vec::with_capacity(vp.len());
                message(vp, sub(), &mut inner)?;
                emit_len_delimited(2, &inner, &mut entry);
            }
            (Value::Any, Some(vp)) => {
                let mut inner = Vec::with_capacity(vp.len());
                any(vp, &mut inner)?;
                emit_len_delimited(2, &inner, &mut entry);
            }
            _ => entry.extend_from_slice(val.raw),
        }
    }
    Ok((key_bytes, entry))
}

fn any(p: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    let fs = fields(p)?;
    let type_url = fs.iter().find(|f| f.tag == 1).and_then(|f| f.payload).unwrap_or_default();
    let schema = any_schema(type_url);
    for f in &fs {
        match (f.tag, f.payload) {
            (2, Some(v)) if !schema.is_empty() => {
                let mut inner = Vec::with_capacity(v.len());
                message(v, schema, &mut inner)?;
                emit_len_delimited(2, &inner, out);
            }
            _ => out.extend_from_slice(f.raw),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
    use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
        CheckSettings, ExtAuthzPerRoute, ext_authz_per_route,
    };
    use envoy_types::pb::google::protobuf::Any;
    use prost::{Message, Name};

    use super::*;

    fn route(order: &[usize]) -> RouteConfiguration {
        let keys = ["path", "vHost", "basePath", "method", "version", "name", "prodClusterName", "sandClusterName"];
        let mut ext = HashMap::new();
        for &i in order {
            ext.insert(keys[i].to_string(), format!("value-{i}"));
        }
        let per_route = ExtAuthzPerRoute {
            r#override: Some(ext_authz_per_route::Override::CheckSettings(CheckSettings {
                context_extensions: ext,
                ..Default::default()
            })),
        };
        let mut tpfc = HashMap::new();
        let entries = [
            (
                "envoy.filters.http.ext_authz",
                Any { type_url: ExtAuthzPerRoute::type_url(), value: per_route.encode_to_vec() },
            ),
            ("envoy.filters.http.cors", Any { type_url: "type.googleapis.com/x".into(), value: vec![1, 2, 3] }),
            ("envoy.filters.http.lua", Any { type_url: "type.googleapis.com/y".into(), value: vec![] }),
        ];
        for &i in order.iter().filter(|i| **i < 3) {
            tpfc.insert(entries[i].0.to_string(), entries[i].1.clone());
        }
        RouteConfiguration {
            name: "r".into(),
            virtual_hosts: vec![VirtualHost {
                name: "v".into(),
                routes: vec![Route { name: "x".into(), typed_per_filter_config: tpfc, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn maps_encode_the_same_whatever_their_order() {
        let a = route(&[0, 1, 2, 3, 4, 5, 6, 7]);
        let b = route(&[7, 6, 5, 4, 3, 2, 1, 0]);
        let c = route(&[3, 1, 7, 0, 5, 2, 6, 4]);
        let ca = canonicalize(ResourceType::Route, &a.encode_to_vec());
        assert_eq!(ca, canonicalize(ResourceType::Route, &b.encode_to_vec()));
        assert_eq!(ca, canonicalize(ResourceType::Route, &c.encode_to_vec()));
        // Canonical bytes decode to the same content (maps compare regardless of order).
        let decoded = RouteConfiguration::decode(ca.as_slice()).expect("decodes");
        let per_route = |rc: &RouteConfiguration| {
            let any = &rc.virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.ext_authz"];
            ExtAuthzPerRoute::decode(any.value.as_slice()).expect("decodes")
        };
        assert_eq!(per_route(&decoded), per_route(&a));
        assert_eq!(decoded.virtual_hosts[0].routes[0].typed_per_filter_config.len(), 3);
        // And canonicalisation is idempotent.
        assert_eq!(canonicalize(ResourceType::Route, &ca), ca);
    }
}
