//! Property tests of the format (run in CI): encode then decode is the identity for needles,
//! `.idx` entries, fids, TTLs and placements, and no decoder panics on arbitrary bytes.

use kelp_engine::format::{
    FileId, IdxEntry, Needle, OffsetWidth, ReplicaPlacement, SuperBlock, Ttl, TtlUnit, Version,
    VolumeInfo, idx, needle,
};
use proptest::prelude::*;

fn ttl_strategy() -> impl Strategy<Value = Ttl> {
    (0u8..=255, 0u8..=6).prop_map(|(count, unit)| Ttl::from_bytes([count, unit]).unwrap())
}

#[derive(Debug, Clone)]
struct OwnedNeedle {
    cookie: u32,
    key: u64,
    data: Vec<u8>,
    flags: u8,
    name: Option<Vec<u8>>,
    mime: Option<Vec<u8>>,
    last_modified_s: Option<u64>,
    ttl: Option<Ttl>,
    pairs: Option<Vec<u8>>,
    append_at_ns: u64,
}

impl OwnedNeedle {
    fn borrow(&self) -> Needle<'_> {
        Needle {
            cookie: self.cookie,
            key: self.key,
            data: &self.data,
            flags: self.flags,
            name: self.name.as_deref(),
            mime: self.mime.as_deref(),
            last_modified_s: self.last_modified_s,
            ttl: self.ttl,
            pairs: self.pairs.as_deref(),
            checksum: kelp_engine::format::crc32c(&self.data),
            append_at_ns: self.append_at_ns,
        }
    }
}

fn needle_strategy() -> impl Strategy<Value = OwnedNeedle> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    (
        (
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 1..600),
        ),
        prop_oneof![Just(0u8), Just(0x01), Just(0x80), Just(0x81), Just(0x40)],
        (
            proptest::option::of(bytes(256)),
            proptest::option::of(bytes(256)),
        ),
        (
            proptest::option::of(0u64..(1 << 40)),
            proptest::option::of(ttl_strategy()),
        ),
        (proptest::option::of(bytes(300)), any::<u64>()),
    )
        .prop_map(
            |(
                (cookie, key, data),
                flags,
                (name, mime),
                (last_modified_s, ttl),
                (pairs, append_at_ns),
            )| {
                OwnedNeedle {
                    cookie,
                    key,
                    data,
                    flags,
                    name,
                    mime,
                    last_modified_s,
                    ttl,
                    pairs,
                    append_at_ns,
                }
            },
        )
}

proptest! {
    // Proves every needle Kelp can write decodes to the same fields, at both versions, and
    // that its record is a multiple of 8 bytes of the announced length, with the data's CRC32-C
    // where `encoded_checksum` reads it.
    #[test]
    fn needle_round_trip(owned in needle_strategy(), v3 in any::<bool>()) {
        let version = if v3 { Version::V3 } else { Version::V2 };
        let needle = owned.borrow();
        let mut record = Vec::new();
        let size = needle.encode(version, &mut record).unwrap();
        prop_assert_eq!(record.len() as u64, needle::record_bytes(size, version));
        prop_assert_eq!(
            Needle::encoded_checksum(&record, size),
            kelp_engine::format::crc32c(needle.data)
        );
        let decoded = Needle::decode(&record, version).unwrap();
        let mut expected = needle.clone();
        if version == Version::V2 {
            expected.append_at_ns = 0;
        }
        prop_assert_eq!(decoded, expected);
    }

    // Proves the two-step decode (head + rest, data skipped) gives the same metadata.
    #[test]
    fn needle_decode_without_data(owned in needle_strategy()) {
        let needle = owned.borrow();
        let mut record = Vec::new();
        needle.encode(Version::V3, &mut record).unwrap();
        let data_end = needle::DATA_PREFIX_BYTES + needle.data.len();
        let (meta, data_len) = Needle::decode_without_data(
            &record[..needle::DATA_PREFIX_BYTES], &record[data_end..], Version::V3).unwrap();
        prop_assert_eq!(data_len as usize, needle.data.len());
        prop_assert_eq!(meta, Needle { data: &[], ..needle });
    }

    // Proves no byte string makes the needle decoders panic.
    #[test]
    fn needle_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Needle::decode(&bytes, Version::V3);
        let _ = Needle::decode(&bytes, Version::V2);
        let split = bytes.len() / 2;
        let _ = Needle::decode_without_data(&bytes[..split], &bytes[split..], Version::V3);
    }

    // Proves `.idx` entries round-trip at both widths for every offset the width can hold.
    #[test]
    fn idx_round_trip(key in any::<u64>(), offset_units in 0u64..(1 << 40), size in any::<u32>()) {
        for width in [OffsetWidth::Four, OffsetWidth::Five] {
            let entry = IdxEntry { key, offset_units, size };
            let mut bytes = vec![0u8; width.entry_bytes()];
            match entry.encode(width, &mut bytes) {
                Ok(()) => prop_assert_eq!(IdxEntry::decode(&bytes, width), Some(entry)),
                Err(_) => prop_assert!(width == OffsetWidth::Four && offset_units >= 1 << 32),
            }
        }
    }

    // Proves `.idx` parsing returns every whole entry and flags a torn tail, on any bytes.
    #[test]
    fn idx_parse_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        for width in [OffsetWidth::Four, OffsetWidth::Five] {
            let (entries, error) = idx::parse_entries(&bytes, width);
            prop_assert_eq!(entries.count(), bytes.len() / width.entry_bytes());
            prop_assert_eq!(error.is_some(), bytes.len() % width.entry_bytes() != 0);
        }
    }

    // Proves fid text round-trips for every key (key 0 prints as `00` + cookie) and that no
    // text makes the parser panic.
    #[test]
    fn fid_round_trip(volume_id in any::<u32>(), key in any::<u64>(), cookie in any::<u32>(), junk in ".{0,40}") {
        let fid = FileId { volume_id, key, cookie };
        prop_assert_eq!(FileId::parse(&fid.to_string()), Ok(fid));
        let _ = FileId::parse(&junk);
    }

    // Proves TTL text and bytes round-trip for every normalised TTL.
    #[test]
    fn ttl_round_trip(ttl in ttl_strategy()) {
        prop_assert_eq!(Ttl::from_bytes(ttl.to_bytes()), Ok(ttl));
        let normal = ttl.canonical();
        prop_assert_eq!(Ttl::parse(&normal.to_string()).unwrap().to_bytes(), normal.to_bytes());
        prop_assert_eq!(Ttl::parse(&ttl.to_string()).unwrap(), ttl);
        prop_assert_eq!(normal.seconds(), ttl.seconds());
    }

    // Proves placement text and byte round-trip for every valid placement.
    #[test]
    fn placement_round_trip(byte in any::<u8>()) {
        let placement = ReplicaPlacement::from_byte(byte);
        prop_assert_eq!(placement.to_byte(), byte);
        prop_assert_eq!(ReplicaPlacement::parse(&placement.to_string()), Ok(placement));
    }
}

proptest! {
    // Proves the remaining parsers (superblock, `.vif`, TTL and placement text) refuse
    // arbitrary input with an error instead of panicking, and that a superblock that
    // decodes re-encodes to its 8 bytes.
    #[test]
    fn other_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), text in ".{0,12}") {
        if let Ok(superblock) = SuperBlock::decode(&bytes)
            && superblock.extra_bytes == 0
        {
            prop_assert_eq!(&superblock.encode()[..], &bytes[..8]);
        }
        let _ = VolumeInfo::decode(&bytes);
        let _ = VolumeInfo::decode(format!("{{\"bytesOffset\": {text:?}, \"version\": {text}}}").as_bytes());
        let _ = Ttl::parse(&text);
        let _ = ReplicaPlacement::parse(&text);
    }
}

// Proves the documented TTL texts parse to the documented units, with SeaweedFS's
// normalisation, and that bad text is refused with a reason.
#[test]
fn ttl_texts() {
    assert_eq!(
        Ttl::parse("3m").unwrap(),
        Ttl {
            count: 3,
            unit: TtlUnit::Minute
        }
    );
    assert_eq!(
        Ttl::parse("7M").unwrap(),
        Ttl {
            count: 7,
            unit: TtlUnit::Month
        }
    );
    assert_eq!(Ttl::parse("8y").unwrap().to_string(), "8y");
    assert_eq!(Ttl::parse("60m").unwrap().to_string(), "1h");
    assert_eq!(Ttl::parse("5").unwrap().to_string(), "5m");
    assert_eq!(Ttl::parse("").unwrap(), Ttl::EMPTY);
    assert!(Ttl::parse("3x").is_err());
    assert!(Ttl::parse("256d").is_err());
    assert!(Ttl::parse("d").is_err());
    assert!(ReplicaPlacement::parse("300").is_err());
    assert_eq!(ReplicaPlacement::parse("1").unwrap().copy_count(), 2);
}

// Proves the encoder refuses a name longer than 255 bytes instead of truncating it.
#[test]
fn long_name_is_refused() {
    let name = vec![b'a'; 256];
    let needle = Needle {
        key: 1,
        data: b"x",
        name: Some(&name),
        ..Needle::default()
    };
    let error = needle.encode(Version::V3, &mut Vec::new()).unwrap_err();
    assert_eq!(error.to_string(), "name is 256 bytes, longer than 255");
}
