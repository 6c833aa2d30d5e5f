//! Tests of the ladder file: round trips, torn records, damage, setting aside, compaction.

use super::*;
use crate::keys::EpochKey;

/// A key at epoch 0 and the links of `epochs` checkpoints (a step each, a skip at multiples of SKIP).
fn links(epochs: u64) -> (EpochKey, [u8; 32], Vec<KeyLink>) {
    let seed = [5u8; 32];
    let genesis = EpochKey::from_seed(0, seed, [0; 32]).public();
    let mut key = EpochKey::from_seed(0, seed, genesis);
    let mut out = Vec::new();
    for _ in 0..epochs {
        out.push(KeyLink::step(&key));
        if key.epoch().is_multiple_of(SKIP) {
            out.push(KeyLink::skip(&key));
        }
        key.evolve();
    }
    (key, genesis, out)
}

fn header(genesis: [u8; 32]) -> LadderHeader {
    LadderHeader {
        since_epoch: 0,
        genesis,
    }
}

fn all(dir: &Path) -> LadderRead {
    read(dir, |_| true).unwrap().unwrap()
}

#[test]
fn appended_links_read_back_and_repeats_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (_, genesis, links) = links(5);
    let mut w = LadderWriter::create(dir.path(), &header(genesis)).unwrap();
    w.append(&links[..3]).unwrap();
    // A crash after a link became durable but before its checkpoint: the link is made again.
    w.append(&links[2..]).unwrap();
    let read = all(dir.path());
    assert_eq!(read.header, header(genesis));
    assert_eq!(read.links, links);
    assert_eq!((read.records, read.torn_bytes), (links.len() as u64 + 1, 0));
    assert!(read_ladder_absent(&tempfile::tempdir().unwrap()));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ladder_path(dir.path()))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

fn read_ladder_absent(dir: &tempfile::TempDir) -> bool {
    read(dir.path(), |_| true).unwrap().is_none()
}

#[test]
fn a_record_cut_short_is_not_damage_and_is_cut_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_, genesis, links) = links(3);
    let mut w = LadderWriter::create(dir.path(), &header(genesis)).unwrap();
    w.append(&links).unwrap();
    drop(w);
    let path = ladder_path(dir.path());
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 50]).unwrap();
    let read = all(dir.path());
    assert_eq!(read.links, links[..links.len() - 1]);
    assert_eq!(read.torn_bytes, LINK_LEN as u64 - 50);
    let (mut w, reset) = LadderWriter::open(dir.path(), 3, genesis).unwrap();
    assert_eq!(reset, None);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        (HEADER_LEN + (links.len() - 1) * LINK_LEN) as u64
    );
    w.append(&links[links.len() - 1..]).unwrap();
    assert_eq!(all(dir.path()).links, links);
    assert_eq!(std::fs::read(&path).unwrap(), full);
}

#[test]
fn damage_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (_, genesis, links) = links(4);
    let mut w = LadderWriter::create(dir.path(), &header(genesis)).unwrap();
    w.append(&links).unwrap();
    drop(w);
    let path = ladder_path(dir.path());
    let good = std::fs::read(&path).unwrap();
    let damaged_at = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        match read(dir.path(), |_| true) {
            Err(JournalError::Damaged { path: p, why }) => {
                assert_eq!(p, path);
                why
            }
            other => panic!("not reported as damage: {other:?}"),
        }
    };
    // A flipped bit in the second record's key.
    let mut bytes = good.clone();
    bytes[HEADER_LEN + LINK_LEN + 20] ^= 1;
    let why = damaged_at(bytes);
    assert!(
        why.contains(&format!("offset {}", HEADER_LEN + LINK_LEN)) && why.contains("check"),
        "{why}"
    );
    // A bad header, a file shorter than its header.
    let mut bytes = good.clone();
    bytes[0] = b'X';
    assert!(damaged_at(bytes).contains("magic"));
    assert!(damaged_at(good[..10].to_vec()).contains("header"));
    // Records out of order (re-checked so that only the order is wrong).
    let mut bytes = good[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(&encode_link(&links[2]));
    bytes.extend_from_slice(&encode_link(&links[0]));
    assert!(damaged_at(bytes).contains("after links from epoch"));
    // Two different links for the same epochs.
    let mut other = links[1].clone();
    other.signature[0] ^= 1;
    let mut bytes = good[..HEADER_LEN + 2 * LINK_LEN].to_vec();
    bytes.extend_from_slice(&encode_link(&other));
    assert!(damaged_at(bytes).contains("different link"));
    // A link that is neither a step nor a skip.
    let mut odd = links[1].clone();
    odd.to = odd.from + 2;
    let mut bytes = good[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(&encode_link(&odd));
    assert!(damaged_at(bytes).contains("neither"));
}

#[test]
fn an_unusable_file_is_set_aside_and_replaced_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_, genesis, links) = links(2);
    let mut w = LadderWriter::create(dir.path(), &header([9; 32])).unwrap();
    w.append(&links).unwrap();
    drop(w);
    let before = std::fs::read(ladder_path(dir.path())).unwrap();
    let (_, reset) = LadderWriter::open(dir.path(), 7, genesis).unwrap();
    let reset = reset.expect("another genesis key is reported");
    assert!(reset.reason.contains("genesis key"), "{}", reset.reason);
    assert_eq!(reset.since_epoch, 7);
    assert_eq!(std::fs::read(&reset.moved_to).unwrap(), before, "kept");
    let fresh = all(dir.path());
    assert_eq!(
        (
            fresh.header.since_epoch,
            fresh.header.genesis,
            fresh.records
        ),
        (7, genesis, 0)
    );
    // A missing file is started at the writer's epoch.
    std::fs::remove_file(ladder_path(dir.path())).unwrap();
    let (_, reset) = LadderWriter::open(dir.path(), 12, genesis).unwrap();
    assert_eq!(reset, None);
    assert_eq!(all(dir.path()).header.since_epoch, 12);
}

#[test]
fn compaction_keeps_skip_links_and_the_anchor_block_and_still_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let (key, genesis, links) = links(2 * SKIP + 40);
    let mut w = LadderWriter::create(dir.path(), &header(genesis)).unwrap();
    for chunk in links.chunks(100) {
        w.append(chunk).unwrap();
    }
    let anchor_epoch = 2 * SKIP + 10;
    w.compact(anchor_epoch / SKIP * SKIP);
    let kept = all(dir.path()).links;
    assert_eq!(
        kept.len(),
        3 + 40,
        "skip links from 0, 1024, 2048 and the last block's steps"
    );
    let ladder = KeyLadder {
        links: kept.clone(),
    };
    assert_eq!(ladder.resolve(&genesis, key.epoch()), Ok(key.public()));
    // The anchor's epoch resolves through the path read_ladder hands out.
    let path = path(&ladder, anchor_epoch);
    assert_eq!(path.len(), 2 + 10);
    assert!(
        KeyLadder { links: path }
            .resolve(&genesis, anchor_epoch)
            .is_ok()
    );
    // Appending continues after compaction; a lower block compacts nothing.
    w.compact(SKIP);
    let (_, _, longer) = self::links(2 * SKIP + 41);
    w.append(&longer[longer.len() - 1..]).unwrap();
    assert_eq!(all(dir.path()).links.len(), kept.len() + 1);
    assert!(!new_path(dir.path()).exists());
}

#[test]
fn needed_links_for_a_target() {
    let (_, _, links) = links(SKIP + 5);
    let kept: Vec<&KeyLink> = links.iter().filter(|l| needed_for(l, SKIP + 3)).collect();
    assert_eq!(kept.len(), 1 + 3, "the skip 0→SKIP and steps SKIP..SKIP+3");
    let kept: Vec<&KeyLink> = links.iter().filter(|l| needed_for(l, 7)).collect();
    assert_eq!(kept.len(), 7);
}
