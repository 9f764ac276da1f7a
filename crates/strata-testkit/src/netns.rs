//! Test networks of their own, for partitions: each host (an etcd member, and one
//! client host where the commands under test run) in a network namespace, joined by
//! veth pairs to a bridge in a hub namespace, with addresses from 198.18.0.0/15 (the
//! range set aside for network tests) assigned only inside those namespaces and no
//! route out of them. Cutting a host sets its link on the hub down: every packet to
//! and from it is lost (no reset, as in a real partition) until it is healed.
//!
//! Made with `ip netns` and `ip link` (iproute2), which need root; without either the
//! harness fails saying what to install or how to run. Dropping the network removes
//! its namespaces; namespaces left by a test process that died are removed by the
//! next one.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::require_program;

const INSTALL: &str = "apt-get install -y iproute2";

/// A bridge and its hosts.
#[derive(Debug)]
pub struct Net {
    /// Namespace names start with this (`strata-PID-N-`).
    prefix: String,
    hosts: usize,
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new(require_program("ip", INSTALL))
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Removes the namespaces of test processes that are gone.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("strata-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Net {
    /// A network of `hosts` hosts (0, 1, …) and the client host, all up.
    pub fn new(hosts: usize) -> Net {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        require_program("ip", INSTALL);
        let root = Command::new("id").arg("-u").output().map(|o| o.stdout);
        assert!(
            root.is_ok_and(|o| o.trim_ascii() == b"0"),
            "the partition tests make network namespaces, which needs root (CAP_NET_ADMIN \
             and CAP_SYS_ADMIN): run the tests as root, as CI does"
        );
        remove_stale();
        let net = Net {
            prefix: format!(
                "strata-{}-{}-",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            hosts,
        };
        let hub = net.ns("hub");
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for h in 0..=hosts {
            let (ns, link) = (net.host_ns(h), net.hub_link(h));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &link, "netns", &hub, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            ip(&["-n", &hub, "link", "set", &link, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &link, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", net.addr_of(h)),
                "dev",
                "eth0",
            ]);
        }
        net
    }

    fn ns(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    /// Host `h`'s namespace; `h == hosts` is the client.
    fn host_ns(&self, h: usize) -> String {
        if h == self.hosts {
            self.ns("client")
        } else {
            self.ns(&format!("h{h}"))
        }
    }

    fn hub_link(&self, h: usize) -> String {
        format!("vh{h}")
    }

    fn addr_of(&self, h: usize) -> String {
        if h == self.hosts {
            "198.18.0.2".into()
        } else {
            format!("198.18.0.{}", 10 + h)
        }
    }

    /// Host `h`'s address.
    pub fn addr(&self, h: usize) -> String {
        assert!(h < self.hosts, "no host {h}");
        self.addr_of(h)
    }

    /// The words that run a program on host `h` (`ip netns exec NS`).
    pub fn exec_prefix(&self, h: usize) -> Vec<String> {
        vec![
            require_program("ip", INSTALL).display().to_string(),
            "netns".into(),
            "exec".into(),
            self.host_ns(h),
        ]
    }

    /// `program` to run on the client host.
    pub fn client(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let prefix = self.exec_prefix(self.hosts);
        let mut cmd = Command::new(&prefix[0]);
        cmd.args(&prefix[1..]).arg(program);
        cmd
    }

    /// Cuts host `h` off from every other host and the client.
    pub fn cut(&self, h: usize) {
        ip(&[
            "-n",
            &self.ns("hub"),
            "link",
            "set",
            &self.hub_link(h),
            "down",
        ]);
    }

    /// Joins host `h` to the network again.
    pub fn heal(&self, h: usize) {
        ip(&[
            "-n",
            &self.ns("hub"),
            "link",
            "set",
            &self.hub_link(h),
            "up",
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in 0..=self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.host_ns(h)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns("hub")])
            .status();
    }
}
