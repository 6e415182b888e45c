//! Event ids `<8 hex epoch>-<seq>`: their parts, and ids at a given sequence.

/// The sequence part of an id `<8 hex>-<seq>`.
pub fn seq(id: &str) -> u64 {
    let (epoch, seq) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("not an id: {id:?}"));
    assert_eq!(epoch.len(), 8, "epoch of {id:?}");
    assert!(epoch.bytes().all(|b| b.is_ascii_hexdigit()), "{id:?}");
    seq.parse()
        .unwrap_or_else(|_| panic!("not an id sequence: {id:?}"))
}

/// The epoch part of an id `<8 hex>-<seq>`.
pub fn epoch(id: &str) -> &str {
    let (epoch, _) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("not an id: {id:?}"));
    epoch
}

/// The id with the same epoch as `like` and sequence `seq`.
pub fn id_at(like: &str, seq: u64) -> String {
    format!("{}-{seq}", epoch(like))
}
