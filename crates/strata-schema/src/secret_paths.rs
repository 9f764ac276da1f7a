//! Finding the members a field's `secret_paths` name inside its JSON document: a path
//! is member names joined by dots (`admin_credentials.password`), and a list met on
//! the way stands for each of its elements (`members.password` with `members` a list
//! of objects names every element's `password`). Owns that walk; what is done with each
//! member found (taken out for pages and search, fingerprinted for a backup) is the
//! caller's.

use serde_json::{Map, Value};

/// Calls `each(object, name)` for every object that holds the last member of `path`
/// (whether or not it has it) in `doc`, descending into every list on the way.
pub fn each_holder(
    doc: &mut Value,
    path: &str,
    each: &mut dyn FnMut(&mut Map<String, Value>, &str),
) {
    let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    walk(doc, &parts, each);
}

fn walk(at: &mut Value, parts: &[&str], each: &mut dyn FnMut(&mut Map<String, Value>, &str)) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    match at {
        Value::Array(items) => {
            for item in items {
                walk(item, parts, each);
            }
        }
        Value::Object(obj) if rest.is_empty() => each(obj, first),
        Value::Object(obj) => {
            if let Some(next) = obj.get_mut(*first) {
                walk(next, rest, each);
            }
        }
        _ => {}
    }
}

/// `doc` without the members `paths` name.
pub fn remove(doc: &mut Value, paths: &[String]) {
    for path in paths {
        each_holder(doc, path, &mut |obj, name| {
            obj.remove(name);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_into_lists() {
        let mut doc = json!({
            "admin": {"user": "a", "password": "p0"},
            "members": [{"name": "x", "password": "p1"}, {"name": "y", "password": "p2"}, 7],
            "groups": [{"keys": [{"secret": "s1"}, {"secret": "s2", "id": 1}]}],
        });
        remove(
            &mut doc,
            &[
                "admin.password".into(),
                "members.password".into(),
                "groups.keys.secret".into(),
                "absent.path".into(),
            ],
        );
        assert_eq!(
            doc,
            json!({
                "admin": {"user": "a"},
                "members": [{"name": "x"}, {"name": "y"}, 7],
                "groups": [{"keys": [{}, {"id": 1}]}],
            })
        );
        // A document that is itself a list.
        let mut list = json!([{"password": "p"}, {"password": "q", "n": 1}]);
        remove(&mut list, &["password".into()]);
        assert_eq!(list, json!([{}, {"n": 1}]));
    }
}
