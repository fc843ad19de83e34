//! Byte-exact checks against files written by the real SeaweedFS 4.48 (large-disk build):
//! `fixtures/peer_7.*` hold one upload with a name, mime and a `Seaweed-Foo: bar` pair, its
//! delete, and a second upload, exactly as the peer wrote them.

use kelp_engine::format::{
    FileId, IdxEntry, Needle, NeedleError, OffsetWidth, SuperBlock, TOMBSTONE_SIZE, Version,
    VolumeInfo, idx, needle,
};

const DAT: &[u8] = include_bytes!("fixtures/peer_7.dat");
const IDX: &[u8] = include_bytes!("fixtures/peer_7.idx");
const VIF: &[u8] = include_bytes!("fixtures/peer_7.vif");

// Proves Kelp decodes every needle the peer wrote, with name, mime, pairs and CRC intact,
// and that re-encoding the decoded needle gives the peer's bytes (padding aside: the peer
// pads with leftover bytes, Kelp with zeros).
#[test]
fn peer_needles_decode_and_reencode() {
    let superblock = SuperBlock::decode(DAT).unwrap();
    assert_eq!(superblock.version, Version::V3);
    assert_eq!(superblock.block_bytes(), 8);
    let first = Needle::decode(&DAT[8..], Version::V3).unwrap();
    assert_eq!((first.key, first.cookie), (2, 0x275eef73));
    assert_eq!(first.data, b"hello world");
    assert_eq!(first.name, Some(&b"h.txt"[..]));
    assert_eq!(first.mime, Some(&b"text/plain"[..]));
    assert_eq!(first.pairs, Some(&br#"{"Foo":"bar"}"#[..]));
    assert_eq!(first.checksum, 0xc99465aa, "the eTag the peer answered");
    let size = needle::NeedleHeader::decode(&DAT[8..]).unwrap().size;
    let record_len = needle::record_bytes(size, Version::V3) as usize;
    assert_eq!(record_len, 88);
    let mut encoded = Vec::new();
    assert_eq!(first.encode(Version::V3, &mut encoded).unwrap(), size);
    let unpadded = record_len - needle::padding_bytes(size, Version::V3) as usize;
    assert_eq!(encoded[..unpadded], DAT[8..8 + unpadded]);

    let tombstone = Needle::decode(&DAT[96..], Version::V3).unwrap();
    assert_eq!((tombstone.key, tombstone.data.len()), (2, 0));
    let second = Needle::decode(&DAT[128..], Version::V3).unwrap();
    assert_eq!(
        (second.key, second.cookie, second.data),
        (3, 0xeebc5633, &b"hello world"[..])
    );
}

// Proves the peer's 17-byte `.idx` and its `.vif` parse to the entries written, the delete
// being the tombstone size at the tombstone needle's offset.
#[test]
fn peer_index_and_volume_info_parse() {
    let info = VolumeInfo::decode(VIF).unwrap();
    assert_eq!(info.offset_width().unwrap(), OffsetWidth::Five);
    let (entries, error) = idx::parse_entries(IDX, OffsetWidth::Five);
    assert!(error.is_none());
    let entries: Vec<IdxEntry> = entries.collect();
    assert_eq!(
        entries,
        vec![
            IdxEntry {
                key: 2,
                offset_units: 1,
                size: 53
            },
            IdxEntry {
                key: 2,
                offset_units: 12,
                size: TOMBSTONE_SIZE
            },
            IdxEntry {
                key: 3,
                offset_units: 16,
                size: 38
            },
        ]
    );
    let mut encoded = vec![0u8; 17];
    entries[1].encode(OffsetWidth::Five, &mut encoded).unwrap();
    assert_eq!(encoded, IDX[17..34]);
    assert_eq!(
        FileId {
            volume_id: 7,
            key: 3,
            cookie: 0xeebc5633
        }
        .to_string(),
        "7,03eebc5633"
    );
}

// Proves a flipped data byte is reported as a bad CRC and a cut record as truncated.
#[test]
fn corruption_is_named() {
    let mut bytes = DAT[8..96].to_vec();
    bytes[20] ^= 0x01;
    assert!(matches!(
        Needle::decode(&bytes, Version::V3),
        Err(NeedleError::BadCrc { key: 2, .. })
    ));
    assert!(matches!(
        Needle::decode(&DAT[8..60], Version::V3),
        Err(NeedleError::Truncated { .. })
    ));
}
