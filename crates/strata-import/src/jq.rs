//! jq expressions of a mapping, compiled and run with the jaq crates.
//!
//! Values cross the boundary as JSON text (serde_json on our side, jaq's `Val` on
//! theirs): simple, exact, and cheap next to file I/O.

use jaq_core::compile::Undefined;
use jaq_core::data::JustLut;
use jaq_core::load::lex::Expect as LexExpect;
use jaq_core::load::{Arena, Error as LoadError, File, Loader};
use jaq_core::{unwrap_valr, Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

type Data = JustLut<Val>;

/// One compiled jq filter, with the names of the global variables it may use.
pub struct Jq {
    filter: jaq_core::Filter<Data>,
    code: String,
}

impl std::fmt::Debug for Jq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jq({:?})", self.code)
    }
}

fn to_val(value: &Value) -> Result<Val, String> {
    jaq_json::read::parse_single(value.to_string().as_bytes()).map_err(|e| format!("{e}"))
}

fn from_val(val: &Val) -> Result<Value, String> {
    serde_json::from_str(&val.to_string())
        .map_err(|e| format!("jq produced {val}, which is not JSON: {e}"))
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

impl Jq {
    /// Compiles `code`; `vars` are the global variables (`$name`) it may refer to.
    pub fn compile(code: &str, vars: &[String]) -> Result<Jq, String> {
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
        let filter = Compiler::default()
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
            })?;
        Ok(Jq {
            filter,
            code: code.to_owned(),
        })
    }

    /// Runs the filter on `input` with the global variables' values, in the order
    /// given to [`Jq::compile`]; returns every output.
    pub fn run(&self, input: &Value, vars: &[Val]) -> Result<Vec<Value>, String> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new(vars.iter().cloned()));
        self.filter
            .id
            .run((ctx, to_val(input)?))
            .map(unwrap_valr)
            .map(|out| match out {
                Ok(val) => from_val(&val),
                Err(e) => Err(format!("jq expression {:?} failed: {e}", self.code)),
            })
            .collect()
    }

    /// Converts a JSON value for use as a global variable.
    pub fn var(value: &Value) -> Result<Val, String> {
        to_val(value)
    }
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
        let users = Jq::var(&json!({"7": {"email": "a@b.c"}})).unwrap();
        let out = jq
            .run(&json!({"name": "x", "uid": 7, "extra": 1}), &[users])
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
}
