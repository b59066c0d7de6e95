//! Range-based set reconciliation of blob ids (after Meyer, "Range-Based Set Reconciliation").
//! Pure and sans-IO: [`Reconciler::respond`] turns the peer's items into ours.
//!
//! Both sides hold sorted sets of 32-byte ids. A range `[lo, hi)` is summarised by its count and
//! a fingerprint (XOR of the ids, hashed with the count). Equal summaries end that range; a
//! differing range is split into 16 by the responder's own items, or, when small, answered with
//! the responder's ids so the other side learns both directions of the difference. Two sets of a
//! million ids that differ by ten settle in a handful of rounds and a few tens of KB.

use crate::ids::BlobId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ops::Bound;

/// At most this many ids are listed instead of splitting a range further.
pub const LIST_THRESHOLD: usize = 64;
const SPLIT: usize = 16;

/// One range in a reconciliation message. `hi: None` is the end of the id space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// "My items in `[lo, hi)` number `count` with this fingerprint."
    Fingerprint {
        /// Inclusive lower bound.
        lo: [u8; 32],
        /// Exclusive upper bound.
        hi: Option<[u8; 32]>,
        /// Items in range.
        count: u64,
        /// Hash of count and XOR of ids.
        fp: [u8; 16],
    },
    /// "These are all my ids in `[lo, hi)`"; with `reply`, the receiver answers with the ids it
    /// has there that are not listed.
    Ids {
        /// Inclusive lower bound.
        lo: [u8; 32],
        /// Exclusive upper bound.
        hi: Option<[u8; 32]>,
        /// The ids (all of them, or with `reply == false` only those the receiver lacks).
        ids: Vec<BlobId>,
        /// Whether the receiver should answer with its own ids of the range.
        reply: bool,
    },
}

impl Item {
    /// Ids this item carries, at least one (what a frame's size is counted in).
    pub fn weight(&self) -> usize {
        match self {
            Item::Fingerprint { .. } => 1,
            Item::Ids { ids, .. } => ids.len().max(1),
        }
    }
}

/// Cut one step's items into frames of at most `max` ids each (see [`Item::weight`]), splitting
/// an `Ids` item that is longer into consecutive sub-ranges: each part lists all the step's ids
/// in its sub-range, so answering the parts answers the whole. A side that holds nothing gets
/// every id of the other in one step (two million ids for two terabytes of 1 MiB chunks), which
/// no single frame should have to carry. Always at least one frame: an empty step is one empty
/// frame.
pub fn frames(items: Vec<Item>, max: usize) -> Vec<Vec<Item>> {
    let max = max.max(1);
    let mut out: Vec<Vec<Item>> = vec![Vec::new()];
    let mut weight = 0;
    let mut push = |item: Item, out: &mut Vec<Vec<Item>>| {
        let w = item.weight();
        if weight > 0 && weight + w > max {
            out.push(Vec::new());
            weight = 0;
        }
        weight += w;
        if let Some(f) = out.last_mut() {
            f.push(item);
        }
    };
    for item in items {
        match item {
            Item::Ids { lo, hi, ids, reply } if ids.len() > max => {
                let parts: Vec<&[BlobId]> = ids.chunks(max).collect();
                for (k, part) in parts.iter().enumerate() {
                    let start = if k == 0 { lo } else { part[0].0 };
                    let end = parts.get(k + 1).map_or(hi, |next| Some(next[0].0));
                    push(Item::Ids { lo: start, hi: end, ids: part.to_vec(), reply }, &mut out);
                }
            }
            item => push(item, &mut out),
        }
    }
    out
}

impl Item {
    fn bounds(&self) -> ([u8; 32], Option<[u8; 32]>) {
        match self {
            Item::Fingerprint { lo, hi, .. } | Item::Ids { lo, hi, .. } => (*lo, *hi),
        }
    }
}

/// Check that a step's ranges are non-empty, ascending and disjoint, as every honest step is
/// (each answers the ranges it was sent, in order, with sub-ranges of them). Answering such a
/// step reads each of our ids at most once and replies with at most our set plus a few summaries;
/// without the check, a step of a thousand whole-space fingerprints would make us list our whole
/// set a thousand times.
pub fn check_step(items: &[Item]) -> Result<(), &'static str> {
    let mut floor: Option<[u8; 32]> = None;
    let mut ended = false;
    for item in items {
        let (lo, hi) = item.bounds();
        if ended || floor.is_some_and(|f| lo < f) {
            return Err("its ranges overlap or are out of order");
        }
        if hi.is_some_and(|h| h <= lo) {
            return Err("it holds an empty range");
        }
        match hi {
            Some(h) => floor = Some(h),
            None => ended = true,
        }
    }
    Ok(())
}

/// One side of a reconciliation.
pub struct Reconciler {
    set: BTreeSet<BlobId>,
    /// Ids the peer has and we lack.
    pub want: BTreeSet<BlobId>,
    /// Ids we have and the peer lacks (known once a range was listed).
    pub peer_lacks: BTreeSet<BlobId>,
}

fn range(set: &BTreeSet<BlobId>, lo: [u8; 32], hi: Option<[u8; 32]>) -> impl Iterator<Item = &BlobId> {
    let upper = match hi {
        Some(h) => Bound::Excluded(BlobId(h)),
        None => Bound::Unbounded,
    };
    set.range((Bound::Included(BlobId(lo)), upper))
}

fn summary<'a>(ids: impl Iterator<Item = &'a BlobId>) -> (u64, [u8; 16]) {
    let mut x = [0u8; 32];
    let mut n = 0u64;
    for id in ids {
        for (a, b) in x.iter_mut().zip(id.0) {
            *a ^= b;
        }
        n += 1;
    }
    let mut h = blake3::Hasher::new();
    h.update(&x).update(&n.to_le_bytes());
    let mut fp = [0u8; 16];
    fp.copy_from_slice(&h.finalize().as_bytes()[..16]);
    (n, fp)
}

impl Reconciler {
    /// A reconciler over our set of ids.
    pub fn new(set: BTreeSet<BlobId>) -> Self {
        Self { set, want: BTreeSet::new(), peer_lacks: BTreeSet::new() }
    }

    /// The first message: a summary of the whole id space.
    pub fn start(&self) -> Vec<Item> {
        let (count, fp) = summary(self.set.iter());
        vec![Item::Fingerprint { lo: [0; 32], hi: None, count, fp }]
    }

    /// Answer the peer's items. An empty answer means this side has nothing left to say.
    pub fn respond(&mut self, items: &[Item]) -> Vec<Item> {
        let mut out = Vec::new();
        for item in items {
            match item {
                Item::Fingerprint { lo, hi, count, fp } => {
                    let mine: Vec<BlobId> = range(&self.set, *lo, *hi).copied().collect();
                    if summary(mine.iter()) == (*count, *fp) {
                        continue;
                    }
                    if mine.len() <= LIST_THRESHOLD || *count == 0 {
                        out.push(Item::Ids { lo: *lo, hi: *hi, ids: mine, reply: true });
                    } else {
                        let mut bounds: Vec<[u8; 32]> = (1..SPLIT).map(|k| mine[k * mine.len() / SPLIT].0).collect();
                        bounds.dedup();
                        let mut start = *lo;
                        for b in bounds.into_iter().map(Some).chain([*hi]) {
                            let (count, fp) = summary(range(&self.set, start, b));
                            out.push(Item::Fingerprint { lo: start, hi: b, count, fp });
                            if let Some(b) = b {
                                start = b;
                            }
                        }
                    }
                }
                Item::Ids { lo, hi, ids, reply } => {
                    let theirs: BTreeSet<&BlobId> = ids.iter().collect();
                    for id in ids {
                        if !self.set.contains(id) {
                            self.want.insert(*id);
                        }
                    }
                    if *reply {
                        let lacking: Vec<BlobId> =
                            range(&self.set, *lo, *hi).filter(|id| !theirs.contains(id)).copied().collect();
                        self.peer_lacks.extend(lacking.iter().copied());
                        if !lacking.is_empty() {
                            out.push(Item::Ids { lo: *lo, hi: *hi, ids: lacking, reply: false });
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u64) -> BlobId {
        BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    /// Run a reconciliation to the end; returns (a.want, b.want, bytes exchanged, rounds).
    fn run(a: BTreeSet<BlobId>, b: BTreeSet<BlobId>) -> (BTreeSet<BlobId>, BTreeSet<BlobId>, usize, usize) {
        run_framed(a, b, usize::MAX)
    }

    /// The same, each step cut into frames of at most `max` ids and joined again on arrival.
    fn run_framed(
        a: BTreeSet<BlobId>,
        b: BTreeSet<BlobId>,
        max: usize,
    ) -> (BTreeSet<BlobId>, BTreeSet<BlobId>, usize, usize) {
        let mut ra = Reconciler::new(a);
        let mut rb = Reconciler::new(b);
        let mut msg = ra.start();
        let mut bytes = postcard::to_stdvec(&msg).unwrap().len();
        let mut rounds = 1;
        let mut turn_b = true;
        while !msg.is_empty() {
            let sent = frames(msg, max);
            assert!(sent.iter().all(|f| f.iter().map(Item::weight).sum::<usize>() <= max), "a frame over {max} ids");
            msg = sent.into_iter().flatten().collect();
            assert_eq!(check_step(&msg), Ok(()), "an honest step passes the check");
            msg = if turn_b { rb.respond(&msg) } else { ra.respond(&msg) };
            bytes += postcard::to_stdvec(&msg).unwrap().len();
            rounds += 1;
            turn_b = !turn_b;
            assert!(rounds < 64, "reconciliation does not terminate");
        }
        (ra.want, rb.want, bytes, rounds)
    }

    #[test]
    fn overlapping_out_of_order_or_empty_ranges_are_refused() {
        let whole = Item::Fingerprint { lo: [0; 32], hi: None, count: 0, fp: [0; 16] };
        assert_eq!(check_step(std::slice::from_ref(&whole)), Ok(()));
        assert!(check_step(&[whole.clone(), whole.clone()]).is_err(), "the whole space twice");
        let part = |lo: u8, hi: u8| Item::Ids { lo: [lo; 32], hi: Some([hi; 32]), ids: vec![], reply: true };
        assert_eq!(check_step(&[part(1, 2), part(2, 5), part(7, 9)]), Ok(()));
        assert!(check_step(&[part(1, 4), part(3, 5)]).is_err(), "overlap");
        assert!(check_step(&[part(3, 5), part(1, 2)]).is_err(), "out of order");
        assert!(check_step(&[part(4, 4)]).is_err(), "empty");
        assert!(check_step(&[whole, part(1, 2)]).is_err(), "after the end");
    }

    #[test]
    fn equal_sets_settle_in_one_round_trip() {
        let s: BTreeSet<BlobId> = (0..10_000).map(id).collect();
        let (wa, wb, bytes, rounds) = run(s.clone(), s);
        assert!(wa.is_empty() && wb.is_empty());
        assert!(bytes < 200 && rounds == 2, "{bytes} bytes, {rounds} rounds");
    }

    #[test]
    fn a_million_ids_differing_by_ten() {
        let common: Vec<BlobId> = (0..1_000_000).map(id).collect();
        let mut a: BTreeSet<BlobId> = common.iter().copied().collect();
        let mut b = a.clone();
        for n in 0..5 {
            a.insert(id(10_000_000 + n));
            b.insert(id(20_000_000 + n));
        }
        let (wa, wb, bytes, rounds) = run(a, b);
        assert_eq!(wa, (0..5).map(|n| id(20_000_000 + n)).collect());
        assert_eq!(wb, (0..5).map(|n| id(10_000_000 + n)).collect());
        assert!(bytes < 100_000, "{bytes} bytes in {rounds} rounds");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn finds_exactly_the_difference(common in 0u64..3000, only_a in proptest::collection::btree_set(0u64..100_000, 0..200), only_b in proptest::collection::btree_set(0u64..100_000, 0..200)) {
            let base: BTreeSet<BlobId> = (0..common).map(|n| id(1_000_000 + n)).collect();
            let a: BTreeSet<BlobId> = base.iter().copied().chain(only_a.iter().map(|n| id(*n))).collect();
            let b: BTreeSet<BlobId> = base.iter().copied().chain(only_b.iter().map(|n| id(*n))).collect();
            let (wa, wb, _, _) = run(a.clone(), b.clone());
            prop_assert_eq!(wa, b.difference(&a).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(wb, a.difference(&b).copied().collect::<BTreeSet<_>>());
        }

        /// Steps cut into small frames (split `Ids` items included) find the same difference,
        /// also when one side starts empty and learns every id of the other.
        #[test]
        fn framed_steps_find_the_same_difference(common in 0u64..600, only_a in proptest::collection::btree_set(0u64..100_000, 0..300), b_empty in any::<bool>(), max in 1usize..40) {
            let base: BTreeSet<BlobId> = (0..common).map(|n| id(1_000_000 + n)).collect();
            let a: BTreeSet<BlobId> = base.iter().copied().chain(only_a.iter().map(|n| id(*n))).collect();
            let b: BTreeSet<BlobId> = if b_empty { BTreeSet::new() } else { base };
            let (wa, wb, _, _) = run_framed(a.clone(), b.clone(), max);
            prop_assert_eq!(wa, b.difference(&a).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(wb, a.difference(&b).copied().collect::<BTreeSet<_>>());
        }
    }
}
