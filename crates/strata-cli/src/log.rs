//! Log lines: what the long-running commands (`backup watch`, `mirror`) say as they
//! go, and the final error of every command. With `--log-format text` (the default)
//! a line is its message, as people read it; with `--log-format json` it is one JSON
//! object per line — `level`, `time` (RFC 3339, UTC, milliseconds), `message`, then
//! the line's own fields — for a log collector.
//!
//! Owns the shape of a log line and the chosen format; what a command prints as its
//! result on stdout is not a log line (except `backup watch`'s commit lines, which
//! are its log).

use std::io::Write;
use std::sync::OnceLock;

use serde_json::Value;

use crate::cli::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Chooses the format, once, before anything is logged.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
}

fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn now() -> String {
    let millis = strata_core::clock::unix_millis();
    let secs = strata_core::clock::format_rfc3339(millis.div_euclid(1000));
    let base = secs.strip_suffix('Z').unwrap_or(&secs);
    format!("{base}.{:03}Z", millis.rem_euclid(1000))
}

/// One log line (without its newline). `fields` is a JSON object (anything else is
/// left out); in text a warning or error is prefixed as such.
pub fn line(level: Level, message: &str, fields: Value) -> String {
    match format() {
        LogFormat::Text => match level {
            Level::Info => message.to_owned(),
            Level::Warn => format!("warning: {message}"),
            Level::Error => format!("error: {message}"),
        },
        LogFormat::Json => {
            // Built by hand so that level, time and message come first.
            let text = |v: &str| Value::String(v.to_owned()).to_string();
            let mut out = format!(
                "{{\"level\":{},\"time\":{},\"message\":{}",
                text(level.name()),
                text(&now()),
                text(message)
            );
            if let Value::Object(map) = fields {
                for (name, value) in map {
                    if !matches!(name.as_str(), "level" | "time" | "message") {
                        out.push_str(&format!(",{}:{value}", text(&name)));
                    }
                }
            }
            out.push('}');
            out
        }
    }
}

/// Writes one line to standard error (a failed write is dropped: there is nowhere
/// else to say it).
pub fn log(level: Level, message: &str, fields: Value) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", line(level, message, fields));
}

pub fn info(message: &str, fields: Value) {
    log(Level::Info, message, fields);
}

pub fn warn(message: &str, fields: Value) {
    log(Level::Warn, message, fields);
}

/// True when lines are JSON.
pub fn is_json() -> bool {
    format() == LogFormat::Json
}

/// Logs a change of a failure: a warning when `now` differs from `before` (a new or
/// another failure), a note when it cleared. `what` names the thing ("the source
/// store etcd://…"); returns the new state to keep.
pub fn transition(
    before: &Option<String>,
    now: &Option<String>,
    what: &str,
    fields: Value,
) -> Option<String> {
    match (before, now) {
        (_, Some(e)) if before.as_ref() != Some(e) => {
            let mut fields = fields;
            if let Value::Object(map) = &mut fields {
                map.insert("error".into(), Value::String(e.clone()));
            }
            warn(&format!("{what} fails: {e}; retrying"), fields);
        }
        (Some(_), None) => info(&format!("{what} works again"), fields),
        _ => {}
    }
    now.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_put_level_time_and_message_first() {
        init(LogFormat::Json);
        let l = line(
            Level::Warn,
            "the \"store\"\nfails",
            serde_json::json!({"store": "etcd://h:1", "level": "x", "n": 3}),
        );
        assert!(l.starts_with("{\"level\":\"warn\",\"time\":\""), "{l}");
        assert!(!l.contains('\n'));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["message"], "the \"store\"\nfails");
        assert_eq!(v["store"], "etcd://h:1");
        assert_eq!(v["n"], 3);
        assert_eq!(v["level"], "warn");
        let time = v["time"].as_str().unwrap();
        assert_eq!(time.len(), "2026-11-24T08:52:17.123Z".len(), "{time}");
        assert!(strata_core::clock::parse_rfc3339(&time[..19]).is_some());
    }
}
