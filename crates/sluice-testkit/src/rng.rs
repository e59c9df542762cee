//! A small deterministic generator for randomized tests (xorshift64): the
//! same seed gives the same cases on every run, so a failure replays.

pub struct Xorshift(u64);

impl Xorshift {
    /// `seed` must not be zero (xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        assert_ne!(seed, 0, "a xorshift seed must not be zero");
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_and_stays_in_range() {
        let (mut a, mut b) = (Xorshift::new(7), Xorshift::new(7));
        for _ in 0..1000 {
            let n = a.below(10);
            assert_eq!(n, b.below(10));
            assert!(n < 10);
        }
        assert_ne!(Xorshift::new(7).next_u64(), Xorshift::new(8).next_u64());
    }
}
