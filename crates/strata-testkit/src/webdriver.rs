//! A real browser for tests: Debian's headless Chromium, driven over the W3C WebDriver
//! protocol by its ChromeDriver, both started on free loopback ports with a fresh
//! profile in a temp dir and stopped on drop. The client is a few plain HTTP/1.1
//! requests over a TCP stream (JSON in, JSON out): navigate, find by CSS, click,
//! type, read text, run a script, wait for a condition, take a screenshot. A missing
//! browser or driver fails the test with the command that installs it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference in a JSON answer.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const INSTALL: &str =
    "apt-get install -y chromium chromium-driver (scripts/install-deps.sh --test)";

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("port", &self.port)
            .field("session", &self.session)
            .finish()
    }
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser {
    /// Starts ChromeDriver and a headless Chromium of a `width`×`height` window.
    pub fn start(width: u32, height: u32) -> Browser {
        for p in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(p).is_file(),
                "{p} is missing; install it with `{INSTALL}`"
            );
        }
        let port = crate::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let profile = tempfile::tempdir().expect("a temp dir for the browser profile");
        let mut b = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.raw("GET", "/status", None).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The flags keep Chromium off the network (this machine has none): no
        // background requests, no component updates, no sync.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("--user-data-dir={}", b._profile.path().display()),
            format!("--window-size={width},{height}"),
        ])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let answer = b.call("POST", "/session", Some(caps));
        b.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {answer}"))
            .to_owned();
        b
    }

    /// One HTTP request to the driver: its status and JSON body.
    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, Value)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        // The driver keeps the connection open: read the head, then the body its
        // length (or its chunks) says.
        let mut answer = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let split = loop {
            if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                break answer.len();
            }
            answer.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&answer[..split]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
        let start = (split + 4).min(answer.len());
        loop {
            let have = answer.len() - start;
            let done = match length {
                Some(n) => have >= n,
                None if chunked => answer[start..].ends_with(b"0\r\n\r\n"),
                None => false,
            };
            if done {
                break;
            }
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let rest = &answer[start..];
        let body = if chunked {
            dechunk(rest)
        } else {
            rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec()
        };
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// A WebDriver command; its `value`, or a panic saying what failed.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self
            .raw(method, path, body.as_ref())
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        assert!(
            status == 200,
            "chromedriver {method} {path}: {status} {answer}"
        );
        answer["value"].clone()
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})));
    }

    /// The address of the current page.
    pub fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The current page's HTML as the browser holds it.
    pub fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first element `css` selects, if any.
    pub fn try_find(&self, css: &str) -> Option<Element> {
        let (status, answer) = self
            .raw(
                "POST",
                &self.at("/element"),
                Some(&json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        (status == 200)
            .then(|| {
                answer["value"][ELEMENT]
                    .as_str()
                    .map(|id| Element(id.to_owned()))
            })
            .flatten()
    }

    /// The first element `css` selects, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css:?} on {} within 10 s:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks `e` (a link or a button: the next page loads).
    pub fn click(&self, e: &Element) {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/click", e.0)),
            Some(json!({})),
        );
    }

    /// Clears `e` (an input or a text area) and types `text` into it.
    pub fn fill(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/clear", e.0)),
            Some(json!({})),
        );
        self.call(
            "POST",
            &self.at(&format!("/element/{}/value", e.0)),
            Some(json!({"text": text})),
        );
    }

    /// The text of `e` as rendered.
    pub fn text(&self, e: &Element) -> String {
        self.call("GET", &self.at(&format!("/element/{}/text", e.0)), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Waits up to `secs` for `cond` to hold, or panics with `what` and the page.
    pub fn wait_until(&self, secs: u64, what: &str, cond: impl Fn(&Browser) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within {secs} s on {}:\n{}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the window into `dir/name.png` and returns its path.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let b64 = self.call("GET", &self.at("/screenshot"), None);
        let png = base64_decode(b64.as_str().unwrap_or_default());
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "the screenshot is not a PNG"
        );
        std::fs::create_dir_all(dir).expect("the screenshot folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.raw("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The body of a chunked HTTP answer.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).into_owned();
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let tail = &rest[eol + 2..];
        if n == 0 || tail.len() < n {
            break;
        }
        out.extend_from_slice(&tail[..n]);
        rest = tail[n..].strip_prefix(b"\r\n").unwrap_or(&tail[n..]);
    }
    out
}

/// Standard base64 (the screenshot's encoding) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_chunks() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(base64_decode("iVBORw=="), b"\x89PNG");
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
    }
}
