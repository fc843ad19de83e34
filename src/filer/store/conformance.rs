//! The behaviour every store must have, as one suite run against each implementation (the
//! redb test runs it always; the Redis and PostgreSQL tests run it against real servers).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Expect, FilerStore, Op, StoreError};

fn put(path: &str, value: &str) -> Op {
    Op::Put {
        path: path.into(),
        value: value.as_bytes().to_vec(),
        expect: Expect::Any,
    }
}

async fn value_of(store: &dyn FilerStore, path: &str) -> Option<String> {
    let found = store.get(path).await.expect("get");
    found.map(|v| String::from_utf8(v).unwrap())
}

/// Run every case on an empty store.
pub async fn run_all(store: Arc<dyn FilerStore>) {
    puts_gets_and_expectations(store.as_ref()).await;
    batches_are_all_or_nothing(store.as_ref()).await;
    listing_is_a_range_of_one_directory(store.as_ref()).await;
    records_by_prefix(store.as_ref()).await;
    concurrent_writers(store.clone()).await;
}

async fn puts_gets_and_expectations(store: &dyn FilerStore) {
    assert_eq!(value_of(store, "/c/none").await, None);
    store.apply(vec![put("/c/a", "1")]).await.unwrap();
    assert_eq!(value_of(store, "/c/a").await.as_deref(), Some("1"));
    let absent = Op::Put {
        path: "/c/a".into(),
        value: b"2".to_vec(),
        expect: Expect::Absent,
    };
    let refused = store.apply(vec![absent]).await.unwrap_err();
    assert_eq!(
        refused,
        StoreError::Conflict {
            path: "/c/a".into()
        }
    );
    let stale = Op::Put {
        path: "/c/a".into(),
        value: b"3".to_vec(),
        expect: Expect::Exactly(b"0".to_vec()),
    };
    assert!(matches!(
        store.apply(vec![stale]).await,
        Err(StoreError::Conflict { .. })
    ));
    let fresh = Op::Put {
        path: "/c/a".into(),
        value: b"4".to_vec(),
        expect: Expect::Exactly(b"1".to_vec()),
    };
    store.apply(vec![fresh]).await.unwrap();
    assert_eq!(value_of(store, "/c/a").await.as_deref(), Some("4"));
    let keep = Op::PutIfAbsent {
        path: "/c/a".into(),
        value: b"5".to_vec(),
    };
    let make = Op::PutIfAbsent {
        path: "/c/b".into(),
        value: b"6".to_vec(),
    };
    store.apply(vec![keep, make]).await.unwrap();
    assert_eq!(value_of(store, "/c/a").await.as_deref(), Some("4"));
    assert_eq!(value_of(store, "/c/b").await.as_deref(), Some("6"));
    let wrong = Op::Delete {
        path: "/c/a".into(),
        expect: Expect::Exactly(b"1".to_vec()),
    };
    assert!(store.apply(vec![wrong]).await.is_err());
    let right = Op::Delete {
        path: "/c/a".into(),
        expect: Expect::Exactly(b"4".to_vec()),
    };
    store.apply(vec![right]).await.unwrap();
    assert_eq!(value_of(store, "/c/a").await, None);
    let nothing = Op::Delete {
        path: "/c/a".into(),
        expect: Expect::Any,
    };
    store.apply(vec![nothing]).await.unwrap();
    let unicode = "/c/naïve name ✓";
    store.apply(vec![put(unicode, "u")]).await.unwrap();
    assert_eq!(value_of(store, unicode).await.as_deref(), Some("u"));
}

async fn batches_are_all_or_nothing(store: &dyn FilerStore) {
    store.apply(vec![put("/b/held", "x")]).await.unwrap();
    let batch = vec![
        put("/b/one", "1"),
        Op::PutRecord {
            key: "t/batch".into(),
            value: b"r".to_vec(),
        },
        Op::Put {
            path: "/b/held".into(),
            value: b"y".to_vec(),
            expect: Expect::Absent,
        },
    ];
    assert!(matches!(
        store.apply(batch).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(value_of(store, "/b/one").await, None);
    assert_eq!(value_of(store, "/b/held").await.as_deref(), Some("x"));
    assert!(store.records("t/batch", 10).await.unwrap().is_empty());
}

async fn listing_is_a_range_of_one_directory(store: &dyn FilerStore) {
    let mut ops = Vec::new();
    for index in 0..25 {
        ops.push(put(&format!("/l/f{index:02}"), "v"));
    }
    // Neighbours that a careless prefix range would include.
    ops.push(put("/l/sub/deeper", "v"));
    ops.push(put("/l/sub", "d"));
    ops.push(put("/lx/other", "v"));
    ops.push(put("/l-/other", "v"));
    store.apply(ops).await.unwrap();
    let all = store.list("/l", "", false, 1000).await.unwrap();
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names.len(), 26, "{names:?}");
    assert_eq!(names[0], "f00");
    assert_eq!(names[25], "sub");
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    let page = store.list("/l", "f04", false, 3).await.unwrap();
    let names: Vec<&str> = page.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["f05", "f06", "f07"]);
    let page = store.list("/l", "f04", true, 2).await.unwrap();
    assert_eq!(page[0].name, "f04");
    assert_eq!(page[1].value, b"v");
    assert!(store.list("/l", "sub", false, 10).await.unwrap().is_empty());
    assert!(
        store
            .list("/nothing", "", false, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let root = store.list("/", "", false, 100).await.unwrap();
    let names: BTreeSet<&str> = root.iter().map(|l| l.name.as_str()).collect();
    assert!(names.is_empty(), "no root entries were written: {names:?}");
}

async fn records_by_prefix(store: &dyn FilerStore) {
    let mut ops = Vec::new();
    for index in 0..5 {
        ops.push(Op::PutRecord {
            key: format!("d/{index}"),
            value: vec![index],
        });
    }
    ops.push(Op::PutRecord {
        key: "e/0".into(),
        value: vec![9],
    });
    store.apply(ops).await.unwrap();
    let found = store.records("d/", 3).await.unwrap();
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["d/0", "d/1", "d/2"]);
    assert_eq!(found[2].1, vec![2]);
    store
        .apply(vec![
            Op::DeleteRecord { key: "d/0".into() },
            Op::DeleteRecord { key: "d/9".into() },
        ])
        .await
        .unwrap();
    assert_eq!(store.records("d/", 100).await.unwrap().len(), 4);
    assert_eq!(store.records("e/", 100).await.unwrap().len(), 1);
}

async fn concurrent_writers(store: Arc<dyn FilerStore>) {
    let mut tasks = Vec::new();
    for index in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let own = put(&format!("/w/own{index:03}"), "o");
            store.apply(vec![own]).await.unwrap();
            let shared = Op::Put {
                path: "/w/shared".into(),
                value: format!("{index}").into_bytes(),
                expect: Expect::Absent,
            };
            store.apply(vec![shared]).await.is_ok()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(
        winners, 1,
        "exactly one writer creates a path expected absent"
    );
    let listed = store.list("/w", "", false, 1000).await.unwrap();
    assert_eq!(listed.len(), 201);
}
