//! A small, fast hasher for the per-record cache lookups (topic names, schema ids), where
//! SipHash's DoS resistance buys nothing and its cost shows in the encode path.

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64-bit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// `HashMap` hasher builder using [`Fnv`].
pub(crate) type FnvBuildHasher = BuildHasherDefault<Fnv>;
