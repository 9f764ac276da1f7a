//! Semantic search at scale, in-process with the real model (all-MiniLM-L6-v2):
//! embedding throughput, exact nearest neighbours (every vector compared) and the HNSW
//! graph used past 100,000 records: build time, query latency, and its recall@10
//! against the exact search of the same queries in the same run.
//!
//! Run: `cargo bench -p strata-search --bench semantic` (STRATA_BENCH_RECORDS=N,
//! default 110,000; the model from STRATA_MODEL_DIR or target/models/all-MiniLM-L6-v2).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use strata_search::embed::Embedder;
use strata_search::hnsw::Hnsw;
use strata_search::hnsw_file::Mapped;
use strata_search::vectors::Vectors;

const NOUNS: &[&str] = &[
    "kettle",
    "printer",
    "router",
    "laptop",
    "badge",
    "invoice",
    "server",
    "contract",
    "parking permit",
    "monitor",
    "projector",
    "coffee order",
    "firewall rule",
    "backup job",
    "certificate",
    "desk",
    "chair",
    "phone",
    "license",
    "report",
];
const PLACES: &[&str] = &[
    "break room",
    "lobby",
    "data centre",
    "finance office",
    "warehouse",
    "meeting room",
    "reception",
    "rack 12",
    "car park",
    "second floor",
];
const STATES: &[&str] = &[
    "is broken",
    "needs approval",
    "was ordered",
    "is overdue",
    "must be renewed",
    "is missing",
    "was moved",
    "needs cleaning",
    "is out of stock",
    "was replaced",
];

fn text(i: usize) -> String {
    let n = NOUNS[i % NOUNS.len()];
    let p = PLACES[(i / NOUNS.len()) % PLACES.len()];
    let s = STATES[(i / (NOUNS.len() * PLACES.len())) % STATES.len()];
    format!("the {n} in the {p} {s} (ticket {i})")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    ms(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

fn main() {
    let n: usize = std::env::var("STRATA_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(110_000);
    let model = std::env::var_os("STRATA_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/models/all-MiniLM-L6-v2")
        });
    let started = Instant::now();
    let e = Embedder::load(&model).expect("the model (bash scripts/install-deps.sh --test)");
    println!("model load: {:.0} ms", ms(started.elapsed()));

    let texts: Vec<String> = (0..n).map(text).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // Embedding N records takes minutes: the vectors of an earlier run of the same N
    // are kept under target/ and reused (the rate printed is that run's).
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../target/bench-cache/semantic-{n}.bin"));
    let vectors: Vec<Vec<f32>> = match std::fs::read(&cache) {
        Ok(bytes) if bytes.len() > 8 => {
            let rate = f64::from_le_bytes(bytes[..8].try_into().unwrap());
            println!("embedding {n} records: {rate:.0} records/s (measured by an earlier run; vectors reused from {})", cache.display());
            bytes[8..]
                .chunks_exact(4 * e.dims)
                .map(|c| {
                    c.chunks_exact(4)
                        .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                        .collect()
                })
                .collect()
        }
        _ => {
            let started = Instant::now();
            let vectors = e.embed(&refs).unwrap();
            let took = started.elapsed();
            let rate = n as f64 / took.as_secs_f64();
            println!(
                "embedding {n} records: {:.1} s ({rate:.0} records/s)",
                took.as_secs_f64()
            );
            let mut bytes = rate.to_le_bytes().to_vec();
            bytes.extend(vectors.iter().flatten().flat_map(|x| x.to_le_bytes()));
            let _ = std::fs::create_dir_all(cache.parent().unwrap());
            let _ = std::fs::write(&cache, bytes);
            vectors
        }
    };

    let dir = tempfile::tempdir().unwrap();
    let store = Vectors::open(dir.path()).unwrap();
    let put: Vec<(String, Vec<f32>)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("/tickets/{i}"), v.clone()))
        .collect();
    let started = Instant::now();
    store.write(&put, &[], Some(("bench", 1)), false).unwrap();
    println!(
        "writing the vectors: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let queries = [
        "the coffee machine is not working",
        "a new certificate is needed",
        "somebody took my seat",
        "no more paper",
        "the network box in the server room died",
        "please sign off on this purchase",
        "where did the screen go",
        "the monthly figures are late",
        "replace the phone in reception",
        "clean the kitchen",
    ];
    let mut qv = e.embed(&queries).unwrap();
    // More queries: the same ones with another phrasing appended.
    let urgent: Vec<String> = queries.iter().map(|q| format!("{q}, urgent")).collect();
    qv.extend(
        e.embed(&urgent.iter().map(String::as_str).collect::<Vec<_>>())
            .unwrap(),
    );
    let mut embed_times = Vec::new();
    for q in &queries {
        let t = Instant::now();
        e.embed(&[q]).unwrap();
        embed_times.push(t.elapsed());
    }
    embed_times.sort();
    println!("embedding one query: p50 {:.1} ms", pct(&embed_times, 0.5));

    let mut exact = Vec::new();
    let mut exact_times = Vec::new();
    for q in &qv {
        let t = Instant::now();
        let found = store.nearest(q, 10, &|_| true).unwrap();
        exact_times.push(t.elapsed());
        exact.push(found.into_iter().map(|(id, _)| id).collect::<HashSet<_>>());
    }
    exact_times.sort();
    println!(
        "exact nearest 10 of {n} (every vector read from vectors.db and compared): p50 {:.0} ms, p99 {:.0} ms",
        pct(&exact_times, 0.5),
        pct(&exact_times, 0.99)
    );

    let started = Instant::now();
    let mut g = Hnsw::new();
    for (id, v) in put {
        g.insert(&id, v);
    }
    println!(
        "HNSW build of {n} vectors: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let file = dir.path().join("hnsw.bin");
    let t = Instant::now();
    strata_search::hnsw_file::save(&g, &file).unwrap();
    println!(
        "HNSW save {:.0} ms ({:.0} MB)",
        ms(t.elapsed()),
        std::fs::metadata(&file).unwrap().len() as f64 / 1e6
    );
    for ef in [100, 200] {
        let mut times = Vec::new();
        let mut hit = 0;
        let mut read = 0;
        for (q, want) in qv.iter().zip(&exact) {
            // As a query does: open the file, search, reading only the nodes visited.
            let t = Instant::now();
            let m = Mapped::open(&file).unwrap();
            let got = m.search(q, 10, ef, &|_| true);
            times.push(t.elapsed());
            read += m.nodes_read();
            hit += got.iter().filter(|(id, _)| want.contains(id)).count();
        }
        times.sort();
        println!(
            "HNSW nearest 10 from the file, ef {ef}: p50 {:.2} ms, p99 {:.2} ms ({} of {n} nodes read per query), recall@10 {:.1}% against exact ({hit}/{})",
            pct(&times, 0.5),
            pct(&times, 0.99),
            read / qv.len(),
            100.0 * hit as f64 / (10 * qv.len()) as f64,
            10 * qv.len()
        );
    }
    let t = Instant::now();
    let whole = strata_search::hnsw_file::load(&file).unwrap();
    println!(
        "HNSW load whole (to apply changes) {:.0} ms, {} nodes",
        ms(t.elapsed()),
        whole.len()
    );
}
