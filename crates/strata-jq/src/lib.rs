//! jq expressions of a mapping or a migration, compiled and run with the jaq crates,
//! each evaluation bounded.
//!
//! Owns the wording of jq's parse and compile errors (this file) and the bounded
//! evaluation ([`Engine`]): filters run on a worker thread of their own, so that a
//! filter that loops, recurses without end or grows without bound is stopped by time,
//! memory and output limits (or by the caller's stop flag) with an error naming the
//! expression and the limit, instead of hanging or aborting the process. Values cross
//! the boundary as JSON text (serde_json on our side, jaq's `Val` on theirs): simple,
//! exact, and cheap next to file I/O.

use jaq_core::compile::Undefined;
use jaq_core::data::JustLut;
use jaq_core::load::lex::Expect as LexExpect;
use jaq_core::load::{Arena, Error as LoadError, File, Loader};
use jaq_core::Compiler;
use jaq_json::Val;
use serde_json::Value;

mod engine;
pub use engine::{Engine, Jq, Limits, Stopped, BATCH};

type Data = JustLut<Val>;
type Filter = jaq_core::Filter<Data>;

fn to_val(value: &Value) -> Result<Val, String> {
    jaq_json::read::parse_single(value.to_string().as_bytes()).map_err(|e| format!("{e}"))
}

/// ` at column N` when `part` is a slice of `code` (jaq's errors point into the text).
fn at(code: &str, part: &str) -> String {
    let start = code.as_ptr() as usize;
    let offset = (part.as_ptr() as usize).wrapping_sub(start);
    match code.get(..offset) {
        Some(before) if offset <= code.len() => {
            format!(" at column {}", before.chars().count() + 1)
        }
        _ => String::new(),
    }
}

/// What jaq's loader found wrong, one line per error, with where.
fn load_error(code: &str, e: &LoadError<&str>) -> Vec<String> {
    let found = |text: &str| match text.chars().next() {
        None => "the end".to_owned(),
        Some(_) => format!("{:?}", text.chars().take(12).collect::<String>()),
    };
    match e {
        LoadError::Io(errs) => errs
            .iter()
            .map(|(path, msg)| format!("cannot read {path}: {msg}"))
            .collect(),
        LoadError::Lex(errs) => errs
            .iter()
            .map(|(expected, rest)| {
                let expected = match expected {
                    LexExpect::Delim(d) if !["(", "[", "{", "\""].contains(d) => {
                        "closing delimiter"
                    }
                    other => other.as_str(),
                };
                format!(
                    "expected {expected}{}, found {}",
                    at(code, rest),
                    found(rest)
                )
            })
            .collect(),
        LoadError::Parse(errs) => errs
            .iter()
            .map(|(expected, token)| {
                format!(
                    "expected {}{}, found {}",
                    expected.as_str(),
                    at(code, token),
                    found(token)
                )
            })
            .collect(),
    }
}

/// Compiles `code`; `vars` are the global variables (`$name`) it may refer to.
fn compile(code: &str, vars: &[String]) -> Result<Filter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errs| {
            let why: Vec<String> = errs
                .iter()
                .flat_map(|(file, e)| load_error(file.code, e))
                .collect();
            format!(
                "cannot parse the jq expression {code:?}: {}",
                why.join("; ")
            )
        })?;
    let names: Vec<&str> = vars.iter().map(String::as_str).collect();
    Compiler::default()
        .with_funs(funs)
        .with_global_vars(names)
        .compile(modules)
        .map_err(|errs| {
            let why: Vec<String> = errs
                .iter()
                .flat_map(|(file, undefined)| {
                    undefined.iter().map(|(name, what)| {
                        let shown = match what {
                            Undefined::Filter(arity) => format!("{name}/{arity}"),
                            _ => (*name).to_owned(),
                        };
                        let place = at(file.code, name);
                        format!("{} {shown} is not defined{place}", what.as_str())
                    })
                })
                .collect();
            format!(
                "cannot compile the jq expression {code:?}: {}",
                why.join("; ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_with_globals_and_the_standard_library() {
        let jq = Jq::compile(
            "{name, plan: (.plan // \"free\"), mail: $users[.uid | tostring].email}",
            &["$users".into()],
        )
        .unwrap();
        let users = json!({"7": {"email": "a@b.c"}});
        let out = jq
            .run_with(
                &json!({"name": "x", "uid": 7, "extra": 1}),
                vec![users],
                None,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![json!({"name": "x", "plan": "free", "mail": "a@b.c"})]
        );
        let err = Jq::compile(".plan |= ", &[]).unwrap_err();
        assert!(
            err.ends_with("cannot parse the jq expression \".plan |= \": expected term at column 10, found the end"),
            "{err}"
        );
        let err = Jq::compile("{a: (1 + 2}", &[]).unwrap_err();
        assert!(
            err.contains("expected closing parenthesis at column 11, found \"}\""),
            "{err}"
        );
        let err = Jq::compile("if . then 1", &[]).unwrap_err();
        assert!(
            err.contains("expected else or end at column 12, found the end"),
            "{err}"
        );
        let err = Jq::compile(".a | $nope | frob(1)", &[]).unwrap_err();
        assert!(
            err.contains("variable $nope is not defined at column 6")
                && err.contains("filter frob/1 is not defined at column 14"),
            "{err}"
        );
    }

    /// Many inputs per hand-over to the worker, each with its own result and its own
    /// limits: an input that loops stops the run at its index.
    #[test]
    fn run_many_keeps_each_input_apart_and_stops_at_the_one_past_its_limits() {
        let limits = Limits {
            time: std::time::Duration::from_millis(300),
            ..Limits::default()
        };
        let engine = Engine::new(limits).unwrap();
        let jq = engine
            .compile("if . == 7 then error(\"seven\") else . * 2 end", &[])
            .unwrap();
        let inputs: Vec<serde_json::Value> = (0..600).map(|i| json!(i)).collect();
        let refs: Vec<&serde_json::Value> = inputs.iter().collect();
        let out = jq.run_many(&refs, None).unwrap();
        assert_eq!(out.len(), 600);
        assert_eq!(out[599], Ok(vec![json!(1198)]));
        assert!(out[7].as_ref().unwrap_err().contains("seven"));
        let spin = engine
            .compile("if . == 300 then (def f: f; f) else . end", &[])
            .unwrap();
        let stopped = spin.run_many(&refs, None).unwrap_err();
        assert_eq!(stopped.index, 300, "{stopped:?}");
        assert!(
            stopped.message.contains("ran longer than 0.3 s"),
            "{stopped:?}"
        );
        // The engine is lost: later runs fail at once.
        assert!(jq.run(&json!(1), None).unwrap_err().contains("not run"));
    }
}
