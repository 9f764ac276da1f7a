//! A running `strata ui` for tests: started on a free port, its address read from
//! what it prints, requests made with curl (the independent client), killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::Sandbox;

/// A running console and its address.
pub struct Console {
    child: Child,
    pub addr: String,
    /// What it printed on stderr after its address (each write's log line).
    said: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Console {
    pub fn start(s: &Sandbox, args: &[&str]) -> Console {
        Console::start_on(s, "127.0.0.1:0", args)
    }

    /// [`Console::start`] listening on `listen`; requests go to 127.0.0.1 at its port.
    pub fn start_on(s: &Sandbox, listen: &str, args: &[&str]) -> Console {
        let mut all = vec!["ui", "--listen", listen];
        all.extend_from_slice(args);
        let mut child = s.command(&all).stderr(Stdio::piped()).spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let mut lines = BufReader::new(err).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the console said where it listens")
                .unwrap();
            if let Some(rest) = line.split("http://").nth(1) {
                break rest.split('/').next().unwrap().to_owned();
            }
        };
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = said.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        let port = addr.rsplit(':').next().unwrap();
        Console {
            child,
            addr: format!("127.0.0.1:{port}"),
            said,
        }
    }

    /// Its stderr so far (after the line with its address).
    pub fn log(&self) -> String {
        self.said.lock().unwrap().join("\n")
    }

    /// curl's status code and body for `path` (with extra curl arguments).
    pub fn get(&self, path: &str, extra: &[&str]) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
            .args(extra)
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_owned())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
