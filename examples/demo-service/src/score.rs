//! The toy credit score: a pure function of the item id, so the queue host's process
//! endpoint and the live host's `/scores/<id>` always agree, and every test can predict it.

use serde::Serialize;

/// Lowest score the model gives.
pub const MIN_SCORE: u16 = 300;
/// Highest score the model gives.
pub const MAX_SCORE: u16 = 850;
/// Name and version of the model, sent with every score.
pub const MODEL: &str = "demo-credit-v1";

/// Width of one histogram bucket; the last bucket (`800-850`) also holds 850.
const BUCKET_WIDTH: u16 = 50;

/// A score as the service returns it, from the process endpoint and the live host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Score {
    pub item: String,
    pub score: u16,
    pub band: &'static str,
    pub model: &'static str,
}

impl Score {
    pub fn of(item: &str) -> Score {
        let score = score(item);
        Score {
            item: item.to_owned(),
            score,
            band: band(score),
            model: MODEL,
        }
    }
}

/// The score of an item id, from 300 to 850.
pub fn score(item: &str) -> u16 {
    let span = u64::from(MAX_SCORE - MIN_SCORE) + 1;
    // The remainder is below 551, so it fits.
    MIN_SCORE + (mix(fnv1a(item.as_bytes())) % span) as u16
}

/// The band a score falls in.
pub fn band(score: u16) -> &'static str {
    match score {
        ..=579 => "poor",
        580..=669 => "fair",
        670..=739 => "good",
        740..=799 => "very good",
        _ => "exceptional",
    }
}

/// Labels of the histogram buckets, in order: `300-349`, ..., `750-799`, `800-850`.
pub fn bucket_labels() -> Vec<String> {
    (0..bucket_count())
        .map(|index| {
            let low = MIN_SCORE + index as u16 * BUCKET_WIDTH;
            let high = if index + 1 == bucket_count() {
                MAX_SCORE
            } else {
                low + BUCKET_WIDTH - 1
            };
            format!("{low}-{high}")
        })
        .collect()
}

/// Index into [`bucket_labels`] of a score.
pub fn bucket_index(score: u16) -> usize {
    let index = usize::from(score.clamp(MIN_SCORE, MAX_SCORE) - MIN_SCORE) / 50;
    index.min(bucket_count() - 1)
}

fn bucket_count() -> usize {
    usize::from((MAX_SCORE - MIN_SCORE) / BUCKET_WIDTH)
}

/// FNV-1a, 64 bits: stable across platforms and releases, unlike `std`'s hasher.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The splitmix64 finalizer: spreads nearby inputs over the whole range.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_stable_and_in_range() {
        // Pinned: a change here changes every report the demo has ever written.
        assert_eq!(score("ACN-000000001"), 569);
        assert_eq!(score("ACN-000000042"), 363);
        let scores: Vec<u16> = (1..=2000).map(|n| score(&format!("ACN-{n:09}"))).collect();
        assert!(scores.iter().all(|s| (MIN_SCORE..=MAX_SCORE).contains(s)));
        // Spread over the range, not stuck in one band.
        for label in ["poor", "fair", "good", "very good", "exceptional"] {
            assert!(scores.iter().any(|s| band(*s) == label), "{label}");
        }
    }

    #[test]
    fn buckets_cover_the_range() {
        let labels = bucket_labels();
        assert_eq!(labels.first().map(String::as_str), Some("300-349"));
        assert_eq!(labels.last().map(String::as_str), Some("800-850"));
        assert_eq!(labels.len(), 11);
        assert_eq!(bucket_index(300), 0);
        assert_eq!(bucket_index(349), 0);
        assert_eq!(bucket_index(350), 1);
        assert_eq!(bucket_index(799), 9);
        assert_eq!(bucket_index(800), 10);
        assert_eq!(bucket_index(850), 10);
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
