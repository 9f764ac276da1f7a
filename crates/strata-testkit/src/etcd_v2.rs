//! A writer for the etcd v2 API of a test server, as the services that still use v2
//! write it: `PUT /v2/keys/KEY` (with a TTL, or `prevValue` for a compare-and-swap),
//! `DELETE` of a key (with `prevValue` for a compare-and-delete) or of a directory.
//! Blocking HTTP/1.1 on one kept-alive connection, fast enough for thousands of
//! changes a second; each call returns the change's index.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One connection to a member's client port.
#[derive(Debug)]
pub struct V2Writer {
    addr: String,
    conn: Option<BufReader<TcpStream>>,
}

impl V2Writer {
    /// `addr` is `host:port`.
    pub fn new(addr: &str) -> Self {
        V2Writer {
            addr: addr.to_owned(),
            conn: None,
        }
    }

    /// Sets a leaf; `ttl` in seconds.
    pub fn set(&mut self, key: &str, value: &str, ttl: Option<u64>) -> i64 {
        let mut body = format!("value={}", escape(value));
        if let Some(t) = ttl {
            body.push_str(&format!("&ttl={t}"));
        }
        self.ok("PUT", key, "", &body)
    }

    /// Compare-and-swap on the current value.
    pub fn cas(&mut self, key: &str, prev: &str, value: &str) -> i64 {
        let body = format!("value={}", escape(value));
        self.ok("PUT", key, &format!("?prevValue={}", escape(prev)), &body)
    }

    /// Deletes a leaf.
    pub fn delete(&mut self, key: &str) -> i64 {
        self.ok("DELETE", key, "", "")
    }

    /// Compare-and-delete on the current value.
    pub fn cad(&mut self, key: &str, prev: &str) -> i64 {
        self.ok("DELETE", key, &format!("?prevValue={}", escape(prev)), "")
    }

    /// Deletes a directory and everything under it.
    pub fn rmdir(&mut self, key: &str) -> i64 {
        self.ok("DELETE", key, "?dir=true&recursive=true", "")
    }

    fn ok(&mut self, method: &str, key: &str, query: &str, body: &str) -> i64 {
        let (status, index, text) = self.request(method, key, query, body);
        assert!(
            (200..300).contains(&status),
            "{method} {key}{query}: HTTP {status}: {text}"
        );
        index
    }

    /// The status, the `X-Etcd-Index` and the body of one request.
    pub fn request(
        &mut self,
        method: &str,
        key: &str,
        query: &str,
        body: &str,
    ) -> (u16, i64, String) {
        for attempt in 0..2 {
            if self.conn.is_none() {
                let tcp = TcpStream::connect(&self.addr).expect("connect to the v2 API");
                tcp.set_nodelay(true).unwrap();
                self.conn = Some(BufReader::new(tcp));
            }
            let conn = self.conn.as_mut().unwrap();
            let head = format!(
                "{method} /v2/keys{}{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
                path(key),
                self.addr,
                body.len()
            );
            let sent = conn.get_mut().write_all(format!("{head}{body}").as_bytes());
            match sent
                .map_err(|e| e.to_string())
                .and_then(|()| read_answer(conn))
            {
                Ok(answer) => return answer,
                // A kept-alive connection the server closed: once more on a new one.
                Err(e) if attempt == 0 => {
                    let _ = e;
                    self.conn = None;
                }
                Err(e) => panic!("{method} {key}: {e}"),
            }
        }
        unreachable!()
    }
}

fn read_answer(conn: &mut BufReader<TcpStream>) -> Result<(u16, i64, String), String> {
    let mut line = String::new();
    conn.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line: {line:?}"))?;
    let (mut length, mut index, mut chunked) = (0usize, 0i64, false);
    loop {
        line.clear();
        conn.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').unwrap_or((l, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "x-etcd-index" => index = value.trim().parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|e| e.to_string())?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        conn.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok((status, index, String::from_utf8_lossy(&body).into_owned()))
}

fn path(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
