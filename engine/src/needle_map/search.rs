//! Searching sorted sequences by interpolation: the keys of a volume are near-uniform within
//! any range, so a linear guess lands within a few places of the answer; a branch-free binary
//! search over a small window around the guess settles it without mispredicted branches.

/// Places on each side of a guess searched for a block bound or segment bound: their guesses
/// are off by at most one or two for a volume's keys.
pub(super) const BOUND_WINDOW_HALF: usize = 4;

/// Linear interpolation of an index from a key delta, in integer arithmetic on the top 16
/// bits of the delta: `index ~ delta * (count - 1) / span`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Guess {
    span: u64,
    multiplier: u64,
    shift: u8,
}

impl Guess {
    /// For `count` ascending values spanning `span` (last - first).
    pub(super) fn new(span: u64, count: usize) -> Guess {
        assert!(count >= 1);
        assert!((count as u64) < 1 << 48);
        let (shift, multiplier) = guess_parameters(span, count);
        Guess {
            span,
            multiplier,
            shift: shift as u8,
        }
    }

    #[inline(always)]
    pub(super) fn index(&self, delta: u64, count: usize) -> usize {
        let top = delta.min(self.span) >> self.shift;
        (((top * self.multiplier) >> 16) as usize).min(count - 1)
    }
}

/// `(shift, multiplier)` with `((delta >> shift) * multiplier) >> 16 ~ delta * (count - 1) /
/// span` for `delta <= span`; `delta >> shift` is below 2^16, so the product fits 64 bits.
#[inline]
pub(super) fn guess_parameters(span: u64, count: usize) -> (u32, u64) {
    let shift = (64 - span.leading_zeros()).saturating_sub(16);
    let span_top = (span >> shift).max(1);
    (shift, (((count - 1) as u64) << 16) / span_top)
}

/// The last index `i < count` with `value_at(i) <= target`, where `value_at` ascends and
/// `value_at(0) <= target`. Searches the `2 * HALF` places around `guess` when they bracket
/// the answer, else everything.
///
/// No branch depends on a loaded value except the bracket check, which a good guess makes
/// predictable: a mispredicted branch waiting on a cache miss would throw away the work the
/// CPU has started on the next lookups, so lookups would no longer overlap.
#[inline(always)]
pub(super) fn last_at_or_below<const HALF: usize>(
    count: usize,
    guess: usize,
    target: u64,
    value_at: impl Fn(usize) -> u64,
) -> usize {
    debug_assert!(guess < count);
    // The window keeps its length near the ends (it slides instead of shrinking), so the
    // search loop runs the same number of times for every key of a block.
    let len = count.min(2 * HALF);
    let low = guess.saturating_sub(HALF).min(count - len);
    let high = low + len;
    let bracketed = (value_at(low) <= target) & (high == count || value_at(high) > target);
    if bracketed {
        branch_free_search(low, high - low, target, &value_at)
    } else {
        branch_free_search(0, count, target, &value_at)
    }
}

/// `last_at_or_below` for block and segment bounds, whose guesses are exact or off by one:
/// reads the five places from `guess - 1` with independent loads (their cache misses
/// overlap) and counts, falling back to the window search only when they do not bracket
/// the answer. Each bound of a segment sits in its own 64-byte block header, so a binary
/// search there would wait for one cache miss per probe.
#[inline(always)]
pub(super) fn last_bound_at_or_below(
    count: usize,
    guess: usize,
    target: u64,
    value_at: impl Fn(usize) -> u64,
) -> usize {
    const SPAN: usize = 4;
    debug_assert!(guess < count);
    if count <= SPAN {
        return branch_free_search(0, count, target, &value_at);
    }
    let low = guess.saturating_sub(1).min(count - SPAN - 1);
    let above = (1..SPAN)
        .map(|i| usize::from(value_at(low + i) <= target))
        .sum::<usize>();
    if (value_at(low) <= target) & (value_at(low + SPAN) > target) {
        return low + above;
    }
    last_at_or_below::<BOUND_WINDOW_HALF>(count, guess, target, value_at)
}

/// The last index in `low..low + len` with `value_at(i) <= target`, given
/// `value_at(low) <= target`. The loop count depends only on `len`.
#[inline(always)]
pub(super) fn branch_free_search(
    mut low: usize,
    mut len: usize,
    target: u64,
    value_at: &impl Fn(usize) -> u64,
) -> usize {
    while len > 1 {
        let half = len / 2;
        let probe = value_at(low + half);
        low = std::hint::select_unpredictable(probe <= target, low + half, low);
        len -= half;
    }
    low
}
