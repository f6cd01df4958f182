//! Sortable message ids: 48 bits of milliseconds then 80 bits that increase
//! monotonically within a millisecond (ULID layout, Crockford base32), so ids
//! sort by acceptance time even across rooms.

use parking_lot::Mutex;
use rand::RngCore;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Generates monotonic, sortable ids.
#[derive(Debug, Default)]
pub struct IdGen {
    last: Mutex<(u64, u128)>,
}

impl IdGen {
    /// A new id for time `ms`. Within one millisecond (or if the clock steps
    /// back) the random part is incremented, so ids never go backwards.
    pub fn next(&self, ms: u64) -> String {
        let mut last = self.last.lock();
        let (ms, rand) = if ms <= last.0 {
            (last.0, last.1.wrapping_add(1) & ((1u128 << 80) - 1))
        } else {
            let mut b = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut b);
            // Leave headroom so increments within a millisecond never wrap.
            (ms, u128::from_be_bytes(b) >> 49)
        };
        *last = (ms, rand);
        drop(last);
        encode((u128::from(ms) << 80) | rand)
    }
}

fn encode(mut v: u128) -> String {
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    out.iter().map(|&c| c as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_within_and_across_milliseconds() {
        let g = IdGen::default();
        let a = g.next(1000);
        let b = g.next(1000);
        let c = g.next(999);
        let d = g.next(1001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(a.len(), 26);
    }
}
