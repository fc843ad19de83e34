use super::*;
use bytes::Bytes;

fn config(dir: &Path) -> Config {
    Config {
        dir: dir.to_path_buf(),
        ip: "127.0.0.1".parse().unwrap(),
        port: 0,
        public_url: String::new(),
        data_center: String::new(),
        rack: String::new(),
        volumes_max: 8,
        masters: Vec::new(),
        master_kind: crate::volume::config::MasterKind::Kelp,
        cores: 1,
        file_bytes_max: 1 << 20,
        connections_max: None,
        zero_copy_min_bytes: None,
        idle_timeout_ms: 30_000,
        header_timeout_ms: 10_000,
        compaction_bytes_per_second: 0,
        compaction_commit_delay_ms: 0,
        min_free_space_bytes: 0,
        ttl_removal_delay_max: std::time::Duration::from_secs(600),
        grpc_port: 0,
        security: None,
    }
}

fn upload(data: Vec<u8>) -> Upload {
    Upload {
        data: Bytes::from(data),
        name: None,
        mime: None,
        gzipped: false,
        pairs_json: None,
        last_modified_unix_s: 1_700_000_000,
        ttl: None,
        fsync: false,
        is_replica_copy: false,
    }
}

fn fid(key: u64) -> FileId {
    FileId {
        volume_id: 7,
        key,
        cookie: 0xabcd,
    }
}

fn settings() -> VolumeSettings {
    VolumeSettings {
        collection: String::new(),
        replication: kelp_engine::format::ReplicaPlacement::default(),
        ttl: kelp_engine::format::Ttl::EMPTY,
    }
}

// Proves inline writes and ring writes in flight together land at distinct offsets, each key
// reads back its own bytes (small ones from the `.dat`'s mapping, large ones located in the
// file), an overwrite or delete with another cookie is refused, a ring delete hides the key,
// and the files reopen (recovery) with every live key and without the deleted one.
#[test]
fn concurrent_ring_writes_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut stores = open_dir(&config).unwrap();
    let mut core_store = stores.pop().unwrap();
    core_store.create(7, &settings()).unwrap();
    let store = RefCell::new(core_store);
    // Keys 1-9 are written inline and read from the mapping; 10-12 are past both the
    // inline-write and the whole-read size, so they go through the ring together and are
    // located and sent from the file.
    let past_inline = WRITE_INLINE_RECORD_BYTES_MAX.max(READ_WHOLE_RECORD_BYTES_MAX) as usize;
    let data_of = |key: u64| match key {
        10..=12 => vec![key as u8; past_inline + 1000 * key as usize],
        _ => vec![key as u8; 100 + key as usize * 7000],
    };
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let writes = (1..=12u64).map(|key| {
            let store = &store;
            async move {
                let written = write(store, fid(key), &upload(data_of(key)), 1).await;
                written.unwrap().crc
            }
        });
        let crcs = futures_join_all(writes).await;
        for (key, crc) in (1..=12u64).zip(crcs) {
            assert_eq!(crc, kelp_engine::format::crc32c(&data_of(key)));
            let found = read(&store, fid(key), 2).await.unwrap();
            let body = found.data.to_bytes().unwrap();
            assert_eq!(&body[..], &data_of(key)[..], "key {key}");
        }
        let stranger = FileId {
            cookie: 1,
            ..fid(3)
        };
        let refused = write(&store, stranger, &upload(vec![9; 10]), 3).await;
        assert!(matches!(refused, Err(StoreError::CookieMismatch { .. })));
        let refused = delete(&store, stranger, 4).await;
        assert!(matches!(refused, Err(StoreError::NotFound { .. })));
        let deleted = delete(&store, fid(5), 5).await.unwrap();
        // The needle's size field: the data plus its length/flags fields.
        assert!(deleted.size > data_of(5).len() as u64, "{}", deleted.size);
        assert!(matches!(
            read(&store, fid(5), 6).await,
            Err(StoreError::NotFound { .. })
        ));
        let again = delete(&store, fid(5), 7).await;
        assert!(matches!(again, Err(StoreError::NotFound { .. })));
    });
    let core = store.borrow();
    assert_eq!(core.get(7).unwrap().volume.core().appends_in_flight(), 0);
    drop(core);
    drop(store);
    let reopened = open_dir(&config).unwrap().pop().unwrap();
    let volume = &reopened.get(7).unwrap().volume;
    assert_eq!(volume.stats().live_count, 11, "key 5 stays deleted");
    assert!(volume.read(5, 0xabcd).is_err());
    for key in (1..=12u64).filter(|&key| key != 5) {
        let data = volume.read(key, 0xabcd).unwrap();
        assert_eq!(data.needle().data, &data_of(key)[..]);
    }
}

// Proves reads keep working as a volume outgrows its first mapping (the map is made again,
// larger) and that data read through the old mapping stays valid after it is replaced.
#[test]
fn reads_across_a_remap() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = open_dir(&config(dir.path())).unwrap();
    let mut core_store = stores.pop().unwrap();
    core_store.create(7, &settings()).unwrap();
    let store = RefCell::new(core_store);
    let needle_bytes = 100_000usize;
    let needles = dat_map::DAT_MAP_BYTES_MIN as usize / needle_bytes + 2;
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        write(&store, fid(1), &upload(vec![1; needle_bytes]), 1)
            .await
            .unwrap();
        let first = read(&store, fid(1), 2)
            .await
            .unwrap()
            .data
            .to_bytes()
            .unwrap();
        let first_map_len = map_len(&store);
        for key in 2..=needles as u64 {
            let data = vec![key as u8; needle_bytes];
            write(&store, fid(key), &upload(data), key).await.unwrap();
        }
        let last = read(&store, fid(needles as u64), 2).await.unwrap();
        let last = last.data.to_bytes().unwrap();
        assert_eq!(&last[..], &vec![needles as u8; needle_bytes][..]);
        let grown = map_len(&store);
        assert!(grown > first_map_len, "{grown} > {first_map_len}");
        assert_eq!(&first[..], &vec![1u8; needle_bytes][..]);
        let again = read(&store, fid(1), 2)
            .await
            .unwrap()
            .data
            .to_bytes()
            .unwrap();
        assert_eq!(again, first);
    });
}

// Proves a record the page cache dropped is read through the ring with its bytes intact and
// counted as uncached, that the read brings it back so the next GET is served from the
// mapping, and that a wrong cookie is still refused on the uncached path.
#[test]
fn uncached_records_are_read_through_the_ring() {
    let dir = dat_map::disk_tempdir();
    let mut stores = open_dir(&config(dir.path())).unwrap();
    let mut core_store = stores.pop().unwrap();
    core_store.create(7, &settings()).unwrap();
    let store = RefCell::new(core_store);
    let data_of = |key: u64| vec![key as u8; 3000 + 9000 * key as usize];
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for key in 1..=3u64 {
            write(&store, fid(key), &upload(data_of(key)), 1)
                .await
                .unwrap();
        }
        let dat = store.borrow().get(7).unwrap().volume.dat_file();
        dat_map::evict_from_page_cache(&dat);
        let stranger = FileId {
            cookie: 1,
            ..fid(2)
        };
        let refused = read(&store, stranger, 2).await;
        assert!(matches!(refused, Err(StoreError::NotFound { .. })));
        let read_every_key_back = async || {
            for key in 1..=3u64 {
                let found = read(&store, fid(key), 2).await.unwrap();
                assert_eq!(&found.data.to_bytes().unwrap()[..], &data_of(key)[..]);
            }
        };
        let uncached_before = store.borrow().uncached_reads();
        assert!(
            uncached_before >= 1,
            "the evicted record was read from the mapping"
        );
        read_every_key_back().await;
        let uncached = store.borrow().uncached_reads();
        assert!(uncached > uncached_before, "{uncached} uncached reads");
        read_every_key_back().await;
        assert_eq!(
            store.borrow().uncached_reads(),
            uncached,
            "read again from the cache"
        );
    });
}

/// Bytes of volume 7's current `.dat` mapping.
// Proves a delete that names no cookie (SeaweedFS's BatchDelete with skip_cookie_check)
// finds the live record's cookie, and finds none for a missing or deleted key, or an error
// naming a volume this core does not hold.
#[test]
fn live_cookie_is_the_records_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut core_store = open_dir(&config).unwrap().pop().unwrap();
    core_store.create(7, &settings()).unwrap();
    let store = RefCell::new(core_store);
    let runtime = compio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        write(&store, fid(1), &upload(vec![1; 300]), 1)
            .await
            .unwrap();
        assert_eq!(store.borrow_mut().live_cookie(7, 1).unwrap(), Some(0xabcd));
        assert_eq!(store.borrow_mut().live_cookie(7, 2).unwrap(), None);
        delete(&store, fid(1), 2).await.unwrap();
        assert_eq!(store.borrow_mut().live_cookie(7, 1).unwrap(), None);
    });
    let missing = store.borrow_mut().live_cookie(9, 1).unwrap_err();
    assert!(
        matches!(missing, StoreError::VolumeNotHere { volume_id: 9 }),
        "{missing}"
    );
}

fn map_len(store: &RefCell<CoreStore>) -> u64 {
    let store = store.borrow();
    let map = store.get(7).unwrap().dat_map.as_ref().unwrap();
    map.len()
}

/// Polls every future on this thread until all are done (no extra crate needed).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in handles.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.unwrap()).collect()
}
