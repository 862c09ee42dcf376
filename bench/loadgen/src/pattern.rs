//! The per-connection byte stream that makes every echoed byte checkable.
//!
//! Each connection sends the output of a seeded xorshift generator and checks what comes back
//! against a second generator with the same seed. Because the expected byte depends on its
//! position in the stream, a byte that is corrupted, dropped, duplicated or reordered shows up
//! as a mismatch; generating eight bytes per step keeps the cost near a `memcmp`.

/// A position in one connection's pseudo-random byte stream.
#[derive(Debug, Clone)]
pub struct ByteStream {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl ByteStream {
    /// The stream for `seed`; two streams with the same seed yield the same bytes.
    pub fn new(seed: u64) -> Self {
        // Spread the seed so adjacent seeds give unrelated streams; xorshift needs a non-zero state.
        let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        state = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        state = (state ^ (state >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self {
            state: (state ^ (state >> 31)) | 1,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x.to_le_bytes()
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            if self.used == 8 {
                // Whole words straight into the output while they fit.
                while out.len() - i >= 8 {
                    out[i..i + 8].copy_from_slice(&self.next_word());
                    i += 8;
                }
                if i == out.len() {
                    return;
                }
                self.word = self.next_word();
                self.used = 0;
            }
            let take = (8 - self.used).min(out.len() - i);
            out[i..i + take].copy_from_slice(&self.word[self.used..self.used + take]);
            self.used += take;
            i += take;
        }
    }

    /// Advances over `data`, returning the offset of the first byte that differs from the
    /// stream, if any.
    pub fn check(&mut self, data: &[u8]) -> Option<usize> {
        let mut expected = [0u8; 512];
        let mut offset = 0;
        for chunk in data.chunks(expected.len()) {
            let expected = &mut expected[..chunk.len()];
            self.fill(expected);
            if chunk != &expected[..] {
                let at = chunk.iter().zip(expected.iter()).position(|(a, b)| a != b);
                return Some(offset + at.unwrap_or(0));
            }
            offset += chunk.len();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::ByteStream;

    #[test]
    fn same_seed_same_bytes_whatever_the_chunking() {
        let mut whole = vec![0; 1000];
        ByteStream::new(7).fill(&mut whole);
        let mut pieces = ByteStream::new(7);
        let mut rebuilt = Vec::new();
        for size in [1, 3, 8, 13, 64, 400, 511] {
            let mut part = vec![0; size];
            pieces.fill(&mut part);
            rebuilt.extend(part);
        }
        assert_eq!(rebuilt, whole[..rebuilt.len()]);
        let mut checker = ByteStream::new(7);
        assert_eq!(checker.check(&whole[..500]), None);
        assert_eq!(checker.check(&whole[500..]), None);
    }

    #[test]
    fn catches_corruption_reordering_and_duplication() {
        let mut data = vec![0; 256];
        ByteStream::new(1).fill(&mut data);
        let mut corrupted = data.clone();
        corrupted[100] ^= 1;
        assert_eq!(ByteStream::new(1).check(&corrupted), Some(100));
        let mut swapped = data.clone();
        swapped.swap(10, 11);
        assert!(ByteStream::new(1).check(&swapped).is_some());
        let mut duplicated = data[..50].to_vec();
        duplicated.extend_from_slice(&data[49..]);
        assert!(ByteStream::new(1).check(&duplicated).is_some());
        assert_ne!(
            {
                let mut a = [0; 16];
                ByteStream::new(1).fill(&mut a);
                a
            },
            {
                let mut b = [0; 16];
                ByteStream::new(2).fill(&mut b);
                b
            }
        );
    }
}
