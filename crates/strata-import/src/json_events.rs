//! A JSON pull parser without recursion: the text as a flat stream of events (start
//! and end of objects and arrays, member names, scalars), nesting kept on the heap, so
//! a document of any depth is read in constant stack space.
//!
//! Owns tokenizing and checking JSON syntax with errors that name the line and column
//! (a lone UTF-16 surrogate escape among them, which serde_json words as "unexpected
//! end of hex escape"). It builds no tree: readers such as the etcd v2 dump walk the
//! events with a stack of their own.

/// One event of the stream. Strings are unescaped.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StartObject,
    EndObject,
    StartArray,
    EndArray,
    /// A member name; the member's value follows.
    Name(String),
    Str(String),
    /// A number as written.
    Number(String),
    Bool(bool),
    Null,
}

/// Where a parser is, for messages: `line L column C` (1-based, columns in characters).
fn place(text: &str, at: usize) -> String {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    format!("line {line} column {column}")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Frame {
    /// Inside an object: expecting a name (or the end).
    ObjectName {
        first: bool,
    },
    /// Inside an object, after a member's value.
    ObjectNext,
    /// Inside an array: expecting a value (or the end).
    ArrayValue {
        first: bool,
    },
    ArrayNext,
}

/// The parser: call [`Parser::next`] until it gives `Ok(None)`.
#[derive(Debug)]
pub struct Parser<'a> {
    text: &'a str,
    pos: usize,
    stack: Vec<Frame>,
    started: bool,
    /// After a name: its value comes next.
    value_next: bool,
}

impl<'a> Parser<'a> {
    /// A parser over `text`; a leading UTF-8 byte order mark is skipped.
    pub fn new(text: &'a str) -> Self {
        let pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Parser {
            text,
            pos,
            stack: Vec::new(),
            started: false,
            value_next: false,
        }
    }

    /// How deep the parser is (open objects and arrays).
    pub fn depth(&self) -> usize {
        self.stack.len()
    }

    fn err(&self, at: usize, what: impl std::fmt::Display) -> String {
        format!("{what} at {}", place(self.text, at))
    }

    fn skip_ws(&mut self) {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && matches!(bytes[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// The next event, `Ok(None)` at the end of a whole document.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, String> {
        self.skip_ws();
        if self.value_next {
            self.value_next = false;
            return self.value().map(Some);
        }
        match self.stack.last().copied() {
            None if !self.started => {
                self.started = true;
                if self.peek().is_none() {
                    return Err(self.err(self.pos, "expected a JSON value, found the end"));
                }
                self.value().map(Some)
            }
            None => match self.peek() {
                None => Ok(None),
                Some(_) => Err(self.err(self.pos, "unexpected text after the JSON value")),
            },
            Some(Frame::ObjectName { first }) => match self.peek() {
                Some(b'}') if first => {
                    self.pos += 1;
                    self.close()
                }
                Some(b'"') => {
                    let name = self.string()?;
                    self.skip_ws();
                    if self.peek() != Some(b':') {
                        return Err(
                            self.err(self.pos, format!("expected `:` after the name {name:?}"))
                        );
                    }
                    self.pos += 1;
                    *self.stack.last_mut().expect("in an object") = Frame::ObjectNext;
                    self.value_next = true;
                    Ok(Some(Event::Name(name)))
                }
                _ => Err(self.err(self.pos, "expected a member name in double quotes")),
            },
            Some(Frame::ObjectNext) => match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    *self.stack.last_mut().expect("in an object") =
                        Frame::ObjectName { first: false };
                    self.next()
                }
                Some(b'}') => {
                    self.pos += 1;
                    self.close()
                }
                _ => Err(self.err(self.pos, "expected `,` or `}` in an object")),
            },
            Some(Frame::ArrayValue { first }) => match self.peek() {
                Some(b']') if first => {
                    self.pos += 1;
                    self.close()
                }
                Some(_) => {
                    *self.stack.last_mut().expect("in an array") = Frame::ArrayNext;
                    self.value().map(Some)
                }
                None => Err(self.err(self.pos, "expected a value or `]`, found the end")),
            },
            Some(Frame::ArrayNext) => match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    *self.stack.last_mut().expect("in an array") =
                        Frame::ArrayValue { first: false };
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        return Err(self.err(self.pos, "a trailing `,` before `]`"));
                    }
                    self.next()
                }
                Some(b']') => {
                    self.pos += 1;
                    self.close()
                }
                _ => Err(self.err(self.pos, "expected `,` or `]` in an array")),
            },
        }
    }

    fn close(&mut self) -> Result<Option<Event>, String> {
        match self.stack.pop() {
            Some(Frame::ObjectName { .. } | Frame::ObjectNext) => Ok(Some(Event::EndObject)),
            _ => Ok(Some(Event::EndArray)),
        }
    }

    /// A value starting at the current position (whitespace skipped).
    fn value(&mut self) -> Result<Event, String> {
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            None => Err(self.err(at, "expected a value, found the end")),
            Some(b'{') => {
                self.pos += 1;
                self.stack.push(Frame::ObjectName { first: true });
                Ok(Event::StartObject)
            }
            Some(b'[') => {
                self.pos += 1;
                self.stack.push(Frame::ArrayValue { first: true });
                Ok(Event::StartArray)
            }
            Some(b'"') => self.string().map(Event::Str),
            Some(b't') => self.word("true", Event::Bool(true)),
            Some(b'f') => self.word("false", Event::Bool(false)),
            Some(b'n') => self.word("null", Event::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                let found: String = self.text[at..].chars().take(12).collect();
                Err(self.err(at, format!("expected a value, found {found:?}")))
            }
        }
    }

    fn word(&mut self, word: &str, event: Event) -> Result<Event, String> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(event)
        } else {
            Err(self.err(self.pos, format!("expected {word}")))
        }
    }

    fn number(&mut self) -> Result<Event, String> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut end = start;
        while end < bytes.len()
            && matches!(bytes[end], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        {
            end += 1;
        }
        let text = &self.text[start..end];
        if text.parse::<f64>().is_err() || text.starts_with("-.") || text.starts_with('.') {
            return Err(self.err(start, format!("{text:?} is not a number")));
        }
        self.pos = end;
        Ok(Event::Number(text.to_owned()))
    }

    fn hex4(&self, at: usize) -> Result<u32, String> {
        self.text
            .get(at..at + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err(at, "a \\u escape needs four hex digits"))
    }

    /// A string at the current position (its opening quote), unescaped.
    fn string(&mut self) -> Result<String, String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(i) = rest.find(['"', '\\']) else {
                return Err(self.err(open, "a string is not closed"));
            };
            let chunk = &rest[..i];
            if let Some(c) = chunk.find(|c: char| (c as u32) < 0x20) {
                return Err(self.err(
                    self.pos + c,
                    "a control character inside a string (escape it)",
                ));
            }
            out.push_str(chunk);
            self.pos += i;
            if self.text.as_bytes()[self.pos] == b'"' {
                self.pos += 1;
                return Ok(out);
            }
            let at = self.pos;
            let escape = self.text.as_bytes().get(at + 1).copied();
            self.pos += 2;
            match escape {
                Some(b'"') => out.push('"'),
                Some(b'\\') => out.push('\\'),
                Some(b'/') => out.push('/'),
                Some(b'b') => out.push('\u{8}'),
                Some(b'f') => out.push('\u{c}'),
                Some(b'n') => out.push('\n'),
                Some(b'r') => out.push('\r'),
                Some(b't') => out.push('\t'),
                Some(b'u') => {
                    let high = self.hex4(at + 2)?;
                    self.pos = at + 6;
                    let c = match high {
                        0xD800..=0xDBFF => {
                            let low = if self.text[self.pos..].starts_with("\\u") {
                                self.hex4(self.pos + 2).ok()
                            } else {
                                None
                            };
                            match low {
                                Some(low @ 0xDC00..=0xDFFF) => {
                                    self.pos += 6;
                                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                                }
                                _ => return Err(self.err(at, format!(
                                    "\\u{high:04x} is a lone UTF-16 high surrogate (it must be followed by a low one, \\udc00 to \\udfff): the text is not valid Unicode; fix or remove the escape"
                                ))),
                            }
                        }
                        0xDC00..=0xDFFF => {
                            return Err(self.err(at, format!(
                                "\\u{high:04x} is a lone UTF-16 low surrogate: the text is not valid Unicode; fix or remove the escape"
                            )))
                        }
                        c => c,
                    };
                    out.push(char::from_u32(c).expect("a valid scalar value"));
                }
                _ => {
                    return Err(self.err(
                        at,
                        "an unknown escape (use \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX)",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Result<Vec<Event>, String> {
        let mut p = Parser::new(text);
        let mut out = Vec::new();
        while let Some(e) = p.next()? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn streams_values_and_agrees_with_serde_json() {
        let text = "\u{feff}{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {}, \"c\": []}";
        let got = events(text).unwrap();
        use Event::*;
        assert_eq!(
            got,
            [
                StartObject,
                Name("a".into()),
                StartArray,
                Number("1".into()),
                Number("-2.5e3".into()),
                Bool(true),
                Null,
                Str("xé😀".into()),
                EndArray,
                Name("b".into()),
                StartObject,
                EndObject,
                Name("c".into()),
                StartArray,
                EndArray,
                EndObject
            ]
        );
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "[1 2]",
            "\"abc",
            "tru",
            "{} x",
            "[\"\\x\"]",
            "{1: 2}",
        ] {
            assert!(events(bad).is_err(), "{bad:?} parsed");
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
        }
    }

    #[test]
    fn a_lone_surrogate_is_named_with_its_place() {
        let err = events("{\n \"k\": \"a\\ud800\"}").unwrap_err();
        assert!(
            err.contains("\\ud800 is a lone UTF-16 high surrogate"),
            "{err}"
        );
        assert!(err.ends_with("at line 2 column 9"), "{err}");
        let err = events("[\"\\udc00x\"]").unwrap_err();
        assert!(err.contains("lone UTF-16 low surrogate"), "{err}");
    }

    #[test]
    fn any_depth_in_constant_stack() {
        let depth = 200_000;
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let mut p = Parser::new(&text);
        let mut deepest = 0;
        while p.next().unwrap().is_some() {
            deepest = deepest.max(p.depth());
        }
        assert_eq!(deepest, depth);
    }
}
