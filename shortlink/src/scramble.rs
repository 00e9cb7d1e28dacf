//! Generated short codes: a keyed bijective scramble of a sequence id, written in base62.
//!
//! Ids come from a database sequence, so consecutive links would get neighbouring codes
//! (`0000001`, `0000002`) that anyone could enumerate. A keyed permutation of the whole code
//! space breaks that while staying collision-free: a small Feistel network over 42 bits,
//! restricted to the 62^7 codes by cycle walking (re-applying the permutation until the value
//! falls inside the space, which keeps it a bijection). It hides the order from visitors; it
//! is not encryption and makes no claim against someone who can collect millions of pairs.

use crate::{Error, ShortCode};

/// Every generated code has exactly this many base62 characters.
pub const GENERATED_CODE_LEN: usize = 7;

/// 62^7 ≈ 3.5 trillion codes: the ids a scrambler can encode are `0..CODE_SPACE`.
const CODE_SPACE: u64 = 3_521_614_606_208;
/// The Feistel network permutes 42-bit numbers (2^42 ≈ 1.25 × 62^7, so about one value in
/// five needs a second pass of cycle walking).
const HALF_BITS: u32 = 21;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const ROUNDS: usize = 6;

/// Turns sequence ids into fixed-length, non-sequential codes and back.
#[derive(Clone)]
pub struct CodeScrambler {
    round_keys: [u64; ROUNDS],
}

impl std::fmt::Debug for CodeScrambler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key decides every code: it must never reach a log.
        f.write_str("CodeScrambler { .. }")
    }
}

impl CodeScrambler {
    /// Builds a scrambler from a 128-bit secret. Changing the key of a running deployment
    /// does not break existing links (they are looked up by code), but new codes may then
    /// collide with old ones, which the origin handles by drawing the next id.
    pub fn new(key: [u8; 16]) -> Self {
        let (lo, hi) = key.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().expect("split_at(8) of 16 bytes"));
        let hi = u64::from_le_bytes(hi.try_into().expect("split_at(8) of 16 bytes"));
        let mut round_keys = [0; ROUNDS];
        let mut state = lo;
        for (i, round_key) in round_keys.iter_mut().enumerate() {
            state = mix(state ^ hi.rotate_left(i as u32 * 11));
            *round_key = state;
        }
        Self { round_keys }
    }

    /// The code for sequence id `id`. A few ids (128 of 62^7) come out as a reserved word
    /// in some casing (`metrics`): [`Error::CodeReserved`], and the caller draws the next id,
    /// as for a code a custom slug took.
    pub fn encode(&self, id: u64) -> Result<ShortCode, Error> {
        if id >= CODE_SPACE {
            return Err(Error::IdOutOfRange { id });
        }
        let mut value = self.permute(id);
        while value >= CODE_SPACE {
            value = self.permute(value);
        }
        let digits = base62::encode(value);
        let code = format!("{digits:0>width$}", width = GENERATED_CODE_LEN);
        ShortCode::check(&code)?;
        Ok(ShortCode::from_generated(code))
    }

    /// The id a generated code was made from, or `None` when the code cannot be a generated
    /// one (wrong length or not base62). A custom slug of seven base62 characters also decodes:
    /// this says which id *would* have that code, not that a link with that id exists.
    pub fn decode(&self, code: &ShortCode) -> Option<u64> {
        self.decode_text(code.as_str())
    }

    /// [`Self::decode`] of any text, reserved words too: which id would have it.
    pub fn decode_text(&self, code: &str) -> Option<u64> {
        if code.len() != GENERATED_CODE_LEN || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let value = u64::try_from(base62::decode(code).ok()?).ok()?;
        let mut id = self.unpermute(value);
        while id >= CODE_SPACE {
            id = self.unpermute(id);
        }
        Some(id)
    }

    fn permute(&self, value: u64) -> u64 {
        let (mut left, mut right) = (value >> HALF_BITS, value & HALF_MASK);
        for key in self.round_keys {
            (left, right) = (right, left ^ round(key, right));
        }
        (left << HALF_BITS) | right
    }

    fn unpermute(&self, value: u64) -> u64 {
        let (mut left, mut right) = (value >> HALF_BITS, value & HALF_MASK);
        for key in self.round_keys.iter().rev() {
            (left, right) = (right ^ round(*key, left), left);
        }
        (left << HALF_BITS) | right
    }
}

fn round(key: u64, half: u64) -> u64 {
    mix(half ^ key) & HALF_MASK
}

/// The splitmix64 finaliser: every input bit changes about half the output bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn scrambler() -> CodeScrambler {
        CodeScrambler::new(*b"kurz-test-key-01")
    }

    proptest! {
        #[test]
        fn round_trips(id in 0..CODE_SPACE, key in any::<[u8; 16]>()) {
            let scrambler = CodeScrambler::new(key);
            let code = scrambler.encode(id).expect("id in range");
            prop_assert_eq!(code.as_str().len(), GENERATED_CODE_LEN);
            prop_assert!(ShortCode::parse(code.as_str()).is_ok());
            prop_assert_eq!(scrambler.decode(&code), Some(id));
        }

        #[test]
        fn never_collides(a in 0..CODE_SPACE, b in 0..CODE_SPACE) {
            prop_assume!(a != b);
            let scrambler = scrambler();
            prop_assert_ne!(scrambler.encode(a).expect("in range"), scrambler.encode(b).expect("in range"));
        }

        #[test]
        fn every_seven_char_base62_code_decodes_to_an_id_that_encodes_back(value in 0..CODE_SPACE) {
            let scrambler = scrambler();
            let code = ShortCode::parse(&format!("{:0>7}", base62::encode(value))).expect("valid");
            let id = scrambler.decode(&code).expect("decodes");
            prop_assert_eq!(scrambler.encode(id).expect("in range"), code);
        }
    }

    #[test]
    fn an_id_whose_code_is_a_reserved_word_gets_none() {
        let scrambler = scrambler();
        for word in ["metrics", "Metrics", "METRICS"] {
            // The id that would have it (decode reads any seven base62 characters).
            let id = scrambler.decode_text(word).expect("decodes");
            assert!(
                matches!(scrambler.encode(id), Err(Error::CodeReserved { .. })),
                "{word}"
            );
        }
    }

    #[test]
    fn consecutive_ids_get_unrelated_codes() {
        let scrambler = scrambler();
        let codes: Vec<String> = (1..=10_000)
            .map(|id| scrambler.encode(id).expect("in range").into())
            .collect();
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), codes.len());
        // Neighbours in a sequential scheme share six of seven characters; here a shared
        // prefix of even three characters should be rare (chance about 1 in 62^3 per pair).
        let similar = codes
            .windows(2)
            .filter(|pair| pair[0][..3] == pair[1][..3])
            .count();
        assert!(similar < 5, "{similar} neighbouring codes share a prefix");
    }

    #[test]
    fn different_keys_give_different_codes() {
        let a = CodeScrambler::new([1; 16]);
        let b = CodeScrambler::new([2; 16]);
        let same = (1..1000)
            .filter(|id| a.encode(*id).ok() == b.encode(*id).ok())
            .count();
        assert!(same < 3, "{same} ids got the same code under two keys");
    }

    #[test]
    fn edges_of_the_code_space() {
        let scrambler = scrambler();
        for id in [0, 1, CODE_SPACE - 1] {
            let code = scrambler.encode(id).expect("in range");
            assert_eq!(scrambler.decode(&code), Some(id));
        }
        assert_eq!(
            scrambler.encode(CODE_SPACE),
            Err(Error::IdOutOfRange { id: CODE_SPACE })
        );
    }

    #[test]
    fn decode_refuses_what_cannot_be_generated() {
        let scrambler = scrambler();
        for input in ["abc", "abcdefgh", "abc-efg", "abc_efg"] {
            let code = ShortCode::parse(input).expect("valid slug");
            assert_eq!(scrambler.decode(&code), None, "input {input:?}");
        }
    }
}
