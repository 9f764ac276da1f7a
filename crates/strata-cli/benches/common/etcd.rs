//! The etcd benchmarks' data and their reference writer: keys of the shape
//! `/PREFIX/NNN/item-NNNNNNNN` with ~100-byte JSON values, and the best a raw
//! etcd-client program does with them (transactions of 128 puts, some in flight).

use std::time::{Duration, Instant};

use etcd_client::{Client, TxnOp};

/// A two-thread runtime and an etcd-client connected to `cluster`.
pub fn client(cluster: &strata_testkit::etcd::EtcdCluster) -> (tokio::runtime::Runtime, Client) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt
        .block_on(Client::connect(cluster.endpoints(), None))
        .unwrap();
    (rt, client)
}

pub fn value(i: usize) -> String {
    format!(
        "{{\"id\":{i},\"status\":\"active\",\"owner\":\"user-{:05}\",\"pad\":\"{}\"}}",
        i % 50_000,
        "x".repeat(30)
    )
}

pub fn key(prefix: &str, i: usize) -> String {
    format!("/{prefix}/{:03}/item-{i:08}", i % 1000)
}

/// The best raw put rate: transactions of 128 puts with `in_flight` of them at once.
pub async fn raw_load(client: &Client, prefix: &str, n: usize, in_flight: usize) -> Duration {
    let started = Instant::now();
    let batches: Vec<Vec<usize>> = (0..n)
        .collect::<Vec<_>>()
        .chunks(128)
        .map(<[usize]>::to_vec)
        .collect();
    let mut set = tokio::task::JoinSet::new();
    let mut queue = batches.into_iter();
    loop {
        while set.len() < in_flight {
            let Some(batch) = queue.next() else { break };
            let mut kv = client.kv_client();
            let prefix = prefix.to_owned();
            set.spawn(async move {
                let ops: Vec<TxnOp> = batch
                    .iter()
                    .map(|&i| TxnOp::put(key(&prefix, i), value(i), None))
                    .collect();
                kv.txn(etcd_client::Txn::new().and_then(ops))
                    .await
                    .expect("raw txn");
            });
        }
        if set.join_next().await.is_none() {
            break;
        }
    }
    started.elapsed()
}
