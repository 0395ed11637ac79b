use std::collections::BTreeMap;

use async_graphql::parser::types::{ServiceDocument, TypeKind, TypeSystemDefinition};

use super::*;

/// Every type of an SDL document, as comparable text: kind, interfaces,
/// fields with their arguments and types, enum values, union members.
fn types(sdl: &str) -> BTreeMap<String, Vec<String>> {
    let doc: ServiceDocument = async_graphql::parser::parse_schema(sdl).expect("SDL parses");
    let mut out = BTreeMap::new();
    for def in doc.definitions {
        let t = match def {
            TypeSystemDefinition::Type(t) => t,
            TypeSystemDefinition::Schema(s) => {
                let s = s.node;
                let name = |n: Option<async_graphql::Positioned<async_graphql::Name>>| n.map(|n| n.node.to_string());
                let roots = [name(s.query), name(s.mutation), name(s.subscription)];
                out.insert("schema".to_string(), roots.into_iter().map(|r| r.unwrap_or_default()).collect());
                continue;
            }
            TypeSystemDefinition::Directive(_) => continue,
        };
        let t = t.node;
        let name = t.name.node.to_string();
        let mut lines = Vec::new();
        let field = |f: &async_graphql::parser::types::FieldDefinition| {
            let args: Vec<String> =
                f.arguments.iter().map(|a| format!("{}: {}", a.node.name.node, a.node.ty.node)).collect();
            format!("field {}({}): {}", f.name.node, args.join(", "), f.ty.node)
        };
        match &t.kind {
            TypeKind::Scalar => lines.push("scalar".to_string()),
            TypeKind::Object(o) => {
                let mut ifaces: Vec<String> = o.implements.iter().map(|i| i.node.to_string()).collect();
                ifaces.sort();
                lines.push(format!("type implements {}", ifaces.join(" & ")));
                lines.extend(o.fields.iter().map(|f| field(&f.node)));
            }
            TypeKind::Interface(i) => {
                lines.push("interface".to_string());
                lines.extend(i.fields.iter().map(|f| field(&f.node)));
            }
            TypeKind::Union(u) => {
                let mut members: Vec<String> = u.members.iter().map(|m| m.node.to_string()).collect();
                members.sort();
                lines.push(format!("union {}", members.join(" | ")));
            }
            TypeKind::Enum(e) => {
                lines.push("enum".to_string());
                lines.extend(e.values.iter().map(|v| format!("value {}", v.node.value.node)));
            }
            TypeKind::InputObject(i) => {
                lines.push("input".to_string());
                lines.extend(i.fields.iter().map(|f| format!("field {}: {}", f.node.name.node, f.node.ty.node)));
            }
        }
        lines.sort();
        out.insert(name, lines);
    }
    out
}

#[test]
fn schema_file_and_server_agree() {
    let file = types(SCHEMA_SDL);
    let server = types(&schema().sdl());
    // The server's SDL may declare built-in scalars; the file only uses them.
    let server: BTreeMap<_, _> = server
        .into_iter()
        .filter(|(n, _)| !matches!(n.as_str(), "ID" | "String" | "Int" | "Float" | "Boolean"))
        .collect();
    assert_eq!(file, server, "schema.graphql and the server's schema differ\nserver SDL:\n{}", schema().sdl());
    assert_eq!(file["schema"], ["Query", "Mutation", "Subscription"]);
    for t in ["Query", "Mutation", "Subscription", "Episode", "Character", "Human", "Droid", "Starship", "Review"] {
        assert!(file.contains_key(t), "{t} missing");
    }
    assert!(file.contains_key("ReviewInput") && file.contains_key("SearchResult"));
}

#[tokio::test]
async fn queries_resolve() {
    let s = schema();
    let r = s
        .execute(
            r#"{ hero { name ... on Droid { primaryFunction } friends { name } appearsIn }
                 luke: hero(episode: EMPIRE) { id name ... on Human { homePlanet height starships { name length } } }
                 search(text: "W") { __typename ... on Human { name } ... on Droid { name } ... on Starship { name } }
                 allHumans(first: 1) { name }
                 character(id: "2000") { name }
                 reviews(episode: EMPIRE) { stars commentary } }"#,
        )
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let data = r.data.into_json().expect("JSON");
    assert_eq!(data["hero"]["name"], "R2-D2");
    assert_eq!(data["hero"]["primaryFunction"], "Astromech");
    assert_eq!(data["hero"]["friends"][0]["name"], "Luke Skywalker");
    assert_eq!(data["hero"]["appearsIn"], serde_json::json!(["NEWHOPE", "EMPIRE", "JEDI"]));
    assert_eq!(data["luke"]["homePlanet"], "Tatooine");
    assert_eq!(data["luke"]["starships"][0]["name"], "X-wing");
    assert_eq!(data["allHumans"].as_array().map(Vec::len), Some(1));
    assert_eq!(data["character"]["name"], "C-3PO");
    assert_eq!(data["reviews"][0]["stars"], 5);
    let names: Vec<&str> = data["search"].as_array().expect("list").iter().filter_map(|v| v["name"].as_str()).collect();
    assert_eq!(names, ["Luke Skywalker", "X-wing"]);

    let r = s
        .execute(r#"mutation { createReview(episode: JEDI, review: {stars: 4, commentary: "ok"}) { episode stars } }"#)
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = s.execute("{ reviews(episode: JEDI) { stars commentary } }").await;
    assert_eq!(r.data.into_json().expect("JSON")["reviews"], serde_json::json!([{"stars": 4, "commentary": "ok"}]));
}
