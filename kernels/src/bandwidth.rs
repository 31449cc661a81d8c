//! A memory-bandwidth reference: the STREAM triad `a[i] = b[i] + s * c[i]`.
//!
//! Benches run it over the same number of bytes as a kernel so that the kernel's throughput can be
//! read as a fraction of what memory allows.

/// `a[i] = b[i] + s * c[i]` for every `i`.
///
/// # Panics
/// If the three slices differ in length.
pub fn triad(a: &mut [f32], b: &[f32], c: &[f32], s: f32) {
    assert!(
        a.len() == b.len() && b.len() == c.len(),
        "triad: lengths differ"
    );
    for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
        *a = b + s * c;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn triad_computes() {
        let mut a = [0.0; 3];
        super::triad(&mut a, &[1.0, 2.0, 3.0], &[1.0, 1.0, 2.0], 2.0);
        assert_eq!(a, [3.0, 4.0, 7.0]);
    }
}
