//! Creating an object from a form (only with `--allow-writes`): `GET /new?entity=E`
//! shows an input for each variable of the entity's key pattern and each of its
//! fields, typed (numbers, booleans and enums as such, JSON as a text area, secrets as
//! password inputs whose value never comes back); `POST /create` builds the object
//! and calls [`strata_schema::object::create`], the CLI's `object create`: all or
//! nothing, refused if any of its fields already exists. Also `GET /entities`: the
//! schema's entities (by layer on a layered keyspace), each with its key count (one
//! count read), a link to browse it and one to create.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::{Map, Value};
use strata_core::key::encode_segment;
use strata_core::model::{KeySpan, RangeRequest};
use strata_core::store::Store;
use strata_schema::object::ObjectError;
use strata_schema::schema::Segment;
use strata_schema::{Entity, FieldType, Schema};

use crate::html::{esc, page, param, segment_name, type_name, url};
use crate::writes::{refusal, refuse};
use crate::Console;

/// `GET /entities`: each entity with the keys under its pattern's literal prefix.
pub(crate) async fn entities<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
) -> Response {
    let Some(schema) = c.opts.schema.as_ref() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "entities need the console started with --schema",
        );
    };
    // Grouped by the layer that holds each entity's keys, on a layered keyspace.
    let layer_of = |prefix: &str| {
        c.opts
            .layers
            .iter()
            .find(|(_, spans)| spans.iter().any(|s| s.contains(prefix.as_bytes())))
            .map(|(name, _)| name.as_str())
    };
    let mut entities: Vec<_> = schema
        .entities
        .iter()
        .map(|e| {
            let prefix = e.literal_prefix();
            (layer_of(&prefix), prefix, e)
        })
        .collect();
    entities.sort_by_key(|(layer, ..)| *layer);
    let layered = !c.opts.layers.is_empty();
    let mut rows = String::new();
    for (layer, prefix, e) in entities {
        let layer = if layered {
            format!("<td>{}</td>", esc(layer.unwrap_or("none")))
        } else {
            String::new()
        };
        // One count per entity: the store counts, nothing is listed.
        let req = RangeRequest::new(KeySpan::prefix(prefix.clone().into_bytes())).count_only();
        let keys = match c.store.range(req).await {
            Ok(r) => r.count.to_string(),
            Err(e) => esc(&e.to_string()),
        };
        let new = if c.opts.allow_writes && e.value.is_none() {
            format!("<a href=\"/new?entity={}\">new</a>", url(&e.name))
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr>{layer}<td>{}</td><td><a href=\"/browse?prefix={}\"><code>{}</code></a></td><td class=\"count\">{keys}</td><td>{}</td><td>{new}</td></tr>",
            esc(&e.name),
            url(&prefix),
            esc(&e.pattern),
            esc(e.description.as_deref().unwrap_or("")),
        ));
    }
    let body = format!(
        "<table id=\"entities\"><tr>{}<th>entity</th><th>pattern</th><th>keys under it</th><th></th><th></th></tr>{rows}</table>",
        if layered { "<th>layer</th>" } else { "" }
    );
    Html(page("entities", None, &body)).into_response()
}

fn entity<'s>(schema: &'s Schema, name: &str) -> Option<&'s Entity> {
    schema
        .entities
        .iter()
        .find(|e| e.name == name && e.value.is_none())
}

/// The input of one field, holding `given` (never for a secret).
fn input(name: &str, ty: &FieldType, secret: bool, required: bool, given: &str) -> String {
    let n = esc(name);
    let v = esc(given);
    let req = if required { " required" } else { "" };
    if secret {
        return format!(
            "<input type=\"password\" name=\"f.{n}\" autocomplete=\"new-password\"{req}>"
        );
    }
    match ty {
        FieldType::Int => {
            format!("<input type=\"number\" step=\"1\" name=\"f.{n}\" value=\"{v}\"{req}>")
        }
        FieldType::Bool | FieldType::Enum(_) => {
            let options: Vec<String> = match ty {
                FieldType::Enum(values) => values.clone(),
                _ => vec!["true".into(), "false".into()],
            };
            let mut out = format!("<select name=\"f.{n}\"{req}><option value=\"\"></option>");
            for o in options {
                let sel = if o == given { " selected" } else { "" };
                out.push_str(&format!("<option{sel}>{}</option>", esc(&o)));
            }
            out.push_str("</select>");
            out
        }
        FieldType::Json => {
            format!("<textarea name=\"f.{n}\" rows=\"3\" cols=\"60\"{req}>{v}</textarea>")
        }
        FieldType::Timestamp => format!(
            "<input name=\"f.{n}\" value=\"{v}\" placeholder=\"2024-06-21T08:00:00Z\"{req}>"
        ),
        FieldType::Ref(target) => format!(
            "<input name=\"f.{n}\" value=\"{v}\" placeholder=\"the id of a {}\"{req}>",
            esc(target)
        ),
        FieldType::String => format!("<input name=\"f.{n}\" value=\"{v}\"{req}>"),
    }
}

/// The form for a new `e`, holding what `form` (a rejected submission) gave.
fn form<S>(c: &Console<S>, e: &Entity, form: Option<&str>) -> String {
    let given = |name: &str| param(form, name).unwrap_or_default();
    let mut rows = String::new();
    for seg in &e.segments {
        if let Segment::Var(name, ty) = seg {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>in the key: {}</td><td><input name=\"v.{}\" value=\"{}\" required></td></tr>",
                esc(name),
                esc(segment_name(ty)),
                esc(name),
                esc(&given(&format!("v.{name}")))
            ));
        }
    }
    for (name, f) in &e.fields {
        let kept = if f.secret {
            String::new()
        } else {
            given(&format!("f.{name}"))
        };
        let kept = if kept.is_empty() && form.is_none() {
            f.default.clone().unwrap_or_default()
        } else {
            kept
        };
        rows.push_str(&format!(
            "<tr><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            if f.required { " *" } else { "" },
            esc(&type_name(&f.ty)),
            input(name, &f.ty, f.secret, f.required, &kept)
        ));
    }
    format!(
        "<p>A new <span class=\"entity\">{}</span> at <code>{}</code>: created whole or not at all.</p>\
         <form method=\"post\" action=\"/create\" id=\"create\"><input type=\"hidden\" name=\"entity\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><table>{rows}</table><button>Create</button></form>",
        esc(&e.name),
        esc(&e.pattern),
        esc(&e.name),
        esc(&c.form_token)
    )
}

/// `GET /new?entity=E`.
pub(crate) async fn new<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    uri: Uri,
) -> Response {
    let name = param(uri.query(), "entity").unwrap_or_default();
    let Some(e) = c.opts.schema.as_ref().and_then(|s| entity(s, &name)) else {
        return refuse(StatusCode::NOT_FOUND, "no entity of objects by that name");
    };
    if !c.opts.allow_writes {
        return crate::writes::read_only();
    }
    Html(page(&format!("new {name}"), None, &form(&c, e, None))).into_response()
}

/// The object's path and fields from a submitted form, or what is wrong.
fn object_of(e: &Entity, form: &str) -> Result<(String, Value), String> {
    let mut path = String::new();
    for seg in &e.segments {
        path.push('/');
        match seg {
            Segment::Lit(l) => path.push_str(l),
            Segment::Var(name, ty) => {
                let v = param(Some(form), &format!("v.{name}")).unwrap_or_default();
                if v.is_empty() || !ty.accepts(&v) {
                    return Err(format!("{name} must be {}", segment_name(ty)));
                }
                path.push_str(&encode_segment(&v));
            }
        }
    }
    let mut fields = Map::new();
    for name in e.fields.keys() {
        let v = param(Some(form), &format!("f.{name}")).unwrap_or_default();
        if !v.is_empty() {
            fields.insert(name.clone(), Value::String(v));
        }
    }
    Ok((path, Value::Object(fields)))
}

/// `POST /create` (`entity`, `v.VAR`…, `f.FIELD`…, `csrf`).
pub(crate) async fn create<S: Store + Clone + 'static>(
    State(c): State<Arc<Console<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    if let Some(refused) = refusal(&c, &headers, &text) {
        return refused;
    }
    let name = param(Some(&text), "entity").unwrap_or_default();
    let Some(schema) = c.opts.schema.as_ref() else {
        return refuse(StatusCode::NOT_FOUND, "objects need --schema");
    };
    let Some(e) = entity(schema, &name) else {
        return refuse(StatusCode::NOT_FOUND, "no entity of objects by that name");
    };
    let again = |status: StatusCode, problem: &str| {
        let body = format!(
            "<p class=\"problem\">{}</p>{}",
            esc(problem),
            form(&c, e, Some(&text))
        );
        (status, Html(page(&format!("new {name}"), None, &body))).into_response()
    };
    let (path, object) = match object_of(e, &text) {
        Ok(o) => o,
        Err(problem) => return again(StatusCode::UNPROCESSABLE_ENTITY, &problem),
    };
    match strata_schema::object::create(&c.store, schema, &path, &object).await {
        Ok(revision) => {
            eprintln!("strata ui: created {path} at revision {revision}");
            Redirect::to(&format!("/object?path={}", url(&path))).into_response()
        }
        Err(err @ ObjectError::Exists { .. }) => again(StatusCode::CONFLICT, &err.to_string()),
        Err(err @ ObjectError::Store(_)) => refuse(StatusCode::BAD_GATEWAY, &err.to_string()),
        Err(err) => again(StatusCode::UNPROCESSABLE_ENTITY, &err.to_string()),
    }
}
