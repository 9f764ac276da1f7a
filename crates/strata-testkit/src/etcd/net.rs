//! What differs for a cluster in a test network ([`crate::netns`]): the members are
//! reached from the client host only, so health, the leader and etcdctl are asked
//! from there; and members can be cut off and healed.

use std::process::Command;

use super::{EtcdCluster, INSTALL};
use crate::netns::Net;
use crate::require_program;

impl EtcdCluster {
    /// The test network, for a cluster started with [`EtcdCluster::start_in_net`].
    pub fn net(&self) -> Option<&Net> {
        self.net.as_deref()
    }

    /// Cuts member `i` off from the other members and the client (its etcd runs on).
    pub fn cut(&self, i: usize) {
        self.net
            .as_ref()
            .expect("a cluster in a test network")
            .cut(i);
    }

    /// Joins member `i` to the network again.
    pub fn heal(&self, i: usize) {
        self.net
            .as_ref()
            .expect("a cluster in a test network")
            .heal(i);
    }

    /// `etcdctl`, on the client host when the cluster is in a test network.
    pub(super) fn etcdctl_command(&self) -> Command {
        let program = require_program("etcdctl", INSTALL);
        match &self.net {
            Some(net) => net.client(program),
            None => Command::new(program),
        }
    }

    /// etcdctl's `endpoint health` of member `i`, from the client host.
    pub(super) fn healthy_in_net(&self, i: usize) -> bool {
        self.etcdctl_command()
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=http://{}", self.endpoints()[i]))
            .args(["--command-timeout=1s", "endpoint", "health"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The member whose `endpoint status` says it leads, asked of each member that
    /// answers from the client host.
    pub(super) fn leader_in_net(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            let out = self
                .etcdctl_command()
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints=http://{}", self.endpoints()[i]))
                .args(["--command-timeout=1s", "endpoint", "status", "-w", "json"])
                .output();
            let Ok(out) = out else { return false };
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let status = &json[0]["Status"];
            status["leader"].as_u64().is_some() && status["leader"] == status["header"]["member_id"]
        })
    }
}
