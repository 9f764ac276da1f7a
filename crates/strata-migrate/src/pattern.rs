//! Key patterns of migration steps: `/sigilgate/users/{id}` names every object whose key
//! has those literal segments with any one segment where a `{var}` stands.
//!
//! Owns matching a stored key to the object it belongs to and rendering a target
//! template with the variables of a match. Literal segments are written as text and
//! escaped with the key codec; variables capture the *encoded* segment, so a rendered
//! key keeps the source's escaping exactly.

use std::collections::BTreeMap;

use strata_core::key::encode_segment;

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var(String),
}

/// A parsed key pattern or target template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

/// The variables of a match: name → encoded segment.
pub type Vars = BTreeMap<String, String>;

/// Where a stored key falls under a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The object's own key (the pattern's segments, filled in).
    pub object: String,
    pub vars: Vars,
    /// The rest of the key below the object (`billing/plan`), empty for the object key.
    pub field: String,
}

impl Pattern {
    /// Parses `/a/{x}/b`. Errors are sentences naming the pattern.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("pattern {text:?} must start with `/`"));
        };
        if rest.is_empty() {
            return Err(format!("pattern {text:?} names the root; name a subtree"));
        }
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw.is_empty() {
                return Err(format!("pattern {text:?} has an empty segment"));
            }
            if let Some(inner) = raw.strip_prefix('{') {
                let Some(name) = inner.strip_suffix('}') else {
                    return Err(format!(
                        "pattern {text:?}: segment {raw:?} has no closing `}}`"
                    ));
                };
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(format!(
                        "pattern {text:?}: variable {raw:?} must be a name of letters, digits and `_`"
                    ));
                }
                if segments.contains(&Segment::Var(name.to_owned())) {
                    return Err(format!(
                        "pattern {text:?}: variable {{{name}}} appears twice"
                    ));
                }
                segments.push(Segment::Var(name.to_owned()));
            } else if raw.contains(['{', '}']) {
                return Err(format!(
                    "pattern {text:?}: segment {raw:?} mixes text and a variable; a variable is a whole segment"
                ));
            } else {
                segments.push(Segment::Literal(encode_segment(raw)));
            }
        }
        Ok(Pattern {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The variable names, in order.
    pub fn vars(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Var(v) => Some(v.as_str()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// The literal text before the first variable: every matching key starts with it.
    /// `/sigilgate/users/` for `/sigilgate/users/{id}`; `/config` for `/config`.
    pub fn scan_prefix(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(l) => {
                    out.push('/');
                    out.push_str(l);
                }
                Segment::Var(_) => {
                    out.push('/');
                    return out;
                }
            }
        }
        out
    }

    /// The object `key` belongs to, if any: the key is the object key itself or lies
    /// below it.
    pub fn matches(&self, key: &str) -> Option<Match> {
        let rest = key.strip_prefix('/')?;
        let mut parts = rest.splitn(self.segments.len() + 1, '/');
        let mut vars = Vars::new();
        let mut object_len = 0;
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Var(name) => {
                    vars.insert(name.clone(), part.to_owned());
                }
            }
            object_len += 1 + part.len();
        }
        Some(Match {
            object: key[..object_len].to_owned(),
            vars,
            field: parts.next().unwrap_or("").to_owned(),
        })
    }

    /// Fills the variables in. Every variable must be bound (checked at parse time of a
    /// step by [`Pattern::check_bound_by`]).
    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(l) => out.push_str(l),
                Segment::Var(v) => out.push_str(vars.get(v).map_or("%", String::as_str)),
            }
        }
        out
    }

    /// An error if this template uses a variable that `source` does not bind.
    pub fn check_bound_by(&self, source: &Pattern) -> Result<(), String> {
        let bound = source.vars();
        match self.vars().into_iter().find(|v| !bound.contains(v)) {
            Some(v) => Err(format!(
                "target {:?} uses {{{v}}}, which {:?} does not capture",
                self.text, source.text
            )),
            None => Ok(()),
        }
    }
}

/// A relative field path (`billing/plan`): validated, segments escaped.
pub fn field_path(text: &str) -> Result<String, String> {
    if text.is_empty() || text.starts_with('/') || text.ends_with('/') || text.contains("//") {
        return Err(format!(
            "field {text:?} must be a relative path such as `plan` or `billing/plan`"
        ));
    }
    Ok(text
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_objects_and_fields() {
        let p = Pattern::parse("/sigilgate/users/{id}").unwrap();
        assert_eq!(p.scan_prefix(), "/sigilgate/users/");
        let m = p.matches("/sigilgate/users/12/billing/plan").unwrap();
        assert_eq!(m.object, "/sigilgate/users/12");
        assert_eq!(m.field, "billing/plan");
        assert_eq!(m.vars["id"], "12");
        assert_eq!(p.matches("/sigilgate/users/12").unwrap().field, "");
        assert!(p.matches("/sigilgate/users").is_none());
        assert!(p.matches("/sigilgate/nodes/1").is_none());
        let t = Pattern::parse("/sigilgate/paths/{id}").unwrap();
        assert_eq!(t.render(&m.vars), "/sigilgate/paths/12");
        let d = Pattern::parse("/sigilgate/users/{user}/devices/{uuid}").unwrap();
        assert!(d.matches("/sigilgate/users/1/username").is_none());
        assert_eq!(
            d.matches("/sigilgate/users/1/devices/ab/name")
                .unwrap()
                .object,
            "/sigilgate/users/1/devices/ab"
        );
        assert!(t.check_bound_by(&d).is_err());
    }

    #[test]
    fn refuses_bad_patterns() {
        for bad in [
            "users/{id}",
            "/",
            "/a//b",
            "/a/{id",
            "/a/x{id}",
            "/a/{id}/{id}",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(field_path("a b/c").unwrap(), "a b/c");
        assert!(field_path("/a").is_err());
    }
}
