//! `schema doc`: Markdown documentation of the keyspace a schema describes — each
//! pattern, its fields, types, descriptions, secrets and references — with, when a
//! store is given, how many objects each entity has and an example value (secrets
//! masked).

use std::collections::BTreeMap;
use std::fmt::Write;

use strata_core::{scan, KeySpan, Result, Store};

use crate::schema::{Entity, Field, FieldType, Schema};

/// What the store holds per entity: object count and one example value per field.
#[derive(Debug, Default)]
struct Live {
    objects: BTreeMap<String, std::collections::BTreeSet<String>>,
    examples: BTreeMap<(String, String), String>,
}

fn type_text(ty: &FieldType) -> String {
    match ty {
        FieldType::String => "string".into(),
        FieldType::Int => "int".into(),
        FieldType::Bool => "bool".into(),
        FieldType::Timestamp => "timestamp".into(),
        FieldType::Json => "json".into(),
        FieldType::Enum(values) => format!("enum: {}", values.join(", ")),
        FieldType::Ref(target) => format!("ref → {target}"),
    }
}

fn example(field: &Field, value: Option<&String>) -> String {
    match value {
        None => String::new(),
        Some(_) if field.secret => "`••••••` (secret)".into(),
        Some(_) if !field.secret_paths.is_empty() => {
            format!("(JSON; {} masked)", field.secret_paths.join(", "))
        }
        Some(v) => {
            let cut: String = v.chars().take(40).collect();
            let more = if v.chars().count() > 40 { "…" } else { "" };
            format!("`{}{more}`", cut.replace('`', "'").replace('|', "\\|"))
        }
    }
}

async fn live<S: Store>(store: &S, schema: &Schema) -> Result<Live> {
    let mut live = Live::default();
    scan(store, KeySpan::all(), 0, |page| {
        for kv in page {
            let key = String::from_utf8_lossy(&kv.key).into_owned();
            let segments: Vec<&str> = key.strip_prefix('/').unwrap_or(&key).split('/').collect();
            for e in &schema.entities {
                if e.value.is_some() && e.match_path(&segments).is_some() {
                    live.objects
                        .entry(e.name.clone())
                        .or_default()
                        .insert(key.clone());
                    live.examples
                        .entry((e.name.clone(), String::new()))
                        .or_insert_with(|| String::from_utf8_lossy(&kv.value).into_owned());
                } else if e.value.is_none() {
                    let (path, field) = segments.split_at(segments.len().saturating_sub(1));
                    if e.match_path(path).is_some()
                        && e.fields
                            .contains_key(field.first().copied().unwrap_or_default())
                    {
                        live.objects
                            .entry(e.name.clone())
                            .or_default()
                            .insert(path.join("/"));
                        live.examples
                            .entry((e.name.clone(), field[0].to_owned()))
                            .or_insert_with(|| String::from_utf8_lossy(&kv.value).into_owned());
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok(live)
}

fn entity_doc(out: &mut String, e: &Entity, live: Option<&Live>) {
    let _ = writeln!(out, "### {} — `{}`\n", e.name, e.pattern);
    if let Some(d) = &e.description {
        let _ = writeln!(out, "{d}\n");
    }
    if let Some(live) = live {
        let n = live.objects.get(&e.name).map_or(0, |s| s.len());
        let _ = writeln!(
            out,
            "{n} {} in the store.\n",
            if e.value.is_some() { "keys" } else { "objects" }
        );
    }
    if !e.backup {
        let _ = writeln!(out, "Not backed up (`backup = false`).\n");
    }
    let example_header = if live.is_some() { " example |" } else { "" };
    let example_rule = if live.is_some() { "---|" } else { "" };
    let _ = writeln!(
        out,
        "| field | type | required | default | secret | description |{example_header}"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|{example_rule}");
    let rows: Vec<(&str, &Field)> = match &e.value {
        Some(v) => vec![("(value)", v)],
        None => e.fields.iter().map(|(n, f)| (n.as_str(), f)).collect(),
    };
    for (name, f) in rows {
        let key = (
            e.name.clone(),
            if e.value.is_some() {
                String::new()
            } else {
                name.to_owned()
            },
        );
        let sample = live
            .map(|l| format!(" {} |", example(f, l.examples.get(&key))))
            .unwrap_or_default();
        let secret = if f.secret {
            "yes".to_owned()
        } else if !f.secret_paths.is_empty() {
            f.secret_paths.join(", ")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {secret} | {} |{sample}",
            type_text(&f.ty),
            if f.required { "yes" } else { "" },
            f.default.as_deref().unwrap_or(""),
            f.description.as_deref().unwrap_or("")
        );
    }
    out.push('\n');
}

/// Renders the schema as Markdown; with a store, adds counts and example values.
pub async fn doc<S: Store>(schema: &Schema, store: Option<&S>) -> Result<String> {
    let live = match store {
        Some(s) => Some(live(s, schema).await?),
        None => None,
    };
    let mut out = String::from("# Keyspace\n\n");
    let mut groups: BTreeMap<Option<&str>, Vec<&Entity>> = BTreeMap::new();
    for e in &schema.entities {
        groups.entry(e.namespace.as_deref()).or_default().push(e);
    }
    for (ns, entities) in groups {
        match ns {
            Some(ns) => {
                let _ = writeln!(out, "## Layer {ns} (`{}`)\n", schema.namespaces[ns]);
            }
            None => out.push_str("## Entities\n\n"),
        }
        for e in entities {
            entity_doc(&mut out, e, live.as_ref());
        }
    }
    let refs: Vec<String> = schema
        .entities
        .iter()
        .flat_map(|e| {
            let fields = e
                .fields
                .iter()
                .map(|(n, f)| (n.clone(), f))
                .chain(e.value.iter().map(|f| ("(value)".to_owned(), f)));
            fields
                .filter_map(move |(n, f)| match &f.ty {
                    FieldType::Ref(t) => Some(format!("- {}.{n} → {t}", e.name)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if !refs.is_empty() {
        out.push_str("## References\n\n");
        out.push_str(&refs.join("\n"));
        out.push('\n');
    }
    Ok(out)
}
