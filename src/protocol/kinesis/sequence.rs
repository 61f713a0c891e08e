//! Kinesis sequence numbers as clients see them: decimal strings of up to 129 digits that
//! order as the integers they are (KCL compares them as BigIntegers). Strait's own layout
//! inside them is the core's (`core/seqno.rs`).

use std::cmp::Ordering;

/// Orders two decimal sequence numbers as integers; leading zeros do not count.
pub fn cmp_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_numbers_compare_as_integers() {
        assert_eq!(cmp_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(cmp_sequence_numbers("0010", "10"), Ordering::Equal);
        assert_eq!(cmp_sequence_numbers("42", "42"), Ordering::Equal);
        let aws = "49590338271490256608559692538361571095921575989136588898";
        let later = "49590338271490256608559692540925702759324208523137515618";
        assert_eq!(cmp_sequence_numbers(aws, later), Ordering::Less);
        assert_eq!(cmp_sequence_numbers(later, "2"), Ordering::Greater);
    }
}
