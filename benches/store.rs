//! Store operations on each backend: the replay guard (`claim_once`, once per verification) and
//! a one-account signup (`reserve` + `commit`, once per signup), a form post kept across a
//! verification (`keep_request` + `take_request`). A verified request on a route without
//! `one_account_per_person` touches no store at all.
//! Redis is measured when VERIGATE_TEST_REDIS names a server.

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use verigate::store::{self, Person, Store};
use verigate::store::{RedisConfig, StoreConfig};

fn backends() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let mut out: Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> = Vec::new();
    out.push(("memory", store::open(&StoreConfig::Memory).unwrap(), None));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db").display().to_string();
    out.push((
        "sqlite",
        store::open(&StoreConfig::Sqlite { path }).unwrap(),
        Some(dir),
    ));
    match std::env::var("VERIGATE_TEST_REDIS") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("vgbench:{}:", std::process::id());
            out.push((
                "redis",
                store::open(&StoreConfig::Redis(RedisConfig::url(url, prefix))).unwrap(),
                None,
            ));
        }
        _ => eprintln!("redis: skipped (set VERIGATE_TEST_REDIS to measure it)"),
    }
    out
}

/// Remove what the Redis benchmark wrote.
fn cleanup_redis() {
    let Ok(url) = std::env::var("VERIGATE_TEST_REDIS") else {
        return;
    };
    let Ok(client) = redis::Client::open(url.as_str()) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    let pattern = format!("vgbench:{}:*", std::process::id());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query(&mut con)
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query(&mut con);
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = AtomicU64::new(0);
    for (name, s, _dir) in backends() {
        c.bench_function(&format!("store_claim_once_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let key = format!("k{}", n.fetch_add(1, Ordering::Relaxed));
                let s = s.clone();
                async move { s.claim_once(&key, Duration::from_secs(60)).await.unwrap() }
            })
        });
        c.bench_function(&format!("store_signup_{name}"), |b| {
            b.to_async(&rt).iter(|| {
                let ci = format!("ci{}", n.fetch_add(1, Ordering::Relaxed));
                let s = s.clone();
                async move {
                    let p = Person {
                        ci_hash: &ci,
                        unique_in_site: "di",
                    };
                    s.reserve_account("signup", p, Duration::from_secs(60))
                        .await
                        .unwrap();
                    s.commit_account("signup", &ci).await.unwrap();
                }
            })
        });
        // A form post kept across a verification: keep it, then take it back (once per kept
        // form); a typical form and one at the default cap.
        for (size, label) in [(16 * 1024, "16k"), (256 * 1024, "256k")] {
            let sealed = vec![0x5au8; size + 44];
            c.bench_function(&format!("store_kept_{label}_{name}"), |b| {
                b.to_async(&rt).iter(|| {
                    let id = format!("r{}", n.fetch_add(1, Ordering::Relaxed));
                    let (s, sealed) = (s.clone(), &sealed);
                    async move {
                        let ttl = Duration::from_secs(60);
                        assert!(s.keep_request(&id, sealed, ttl, 1000).await.unwrap());
                        assert!(s.take_request(&id).await.unwrap().is_some());
                    }
                })
            });
        }
    }
    cleanup_redis();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
