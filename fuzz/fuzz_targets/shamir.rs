//! Unseal key shares: `core::decode_share` (hex or base64, as
//! `sys/unseal` reads them) and `barrier::shamir::combine` on whatever an
//! operator might type, and `split` → `combine` on valid parameters.
//!
//! Asserts: nothing panics; hex input decodes to its bytes; any
//! `threshold` of the shares of a key, typed in hex or base64, give the
//! key back, and fewer do not.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use secretd::barrier::Key;
use secretd::barrier::shamir::{check_parameters, combine, share_len, split};
use secretd::core::decode_share;
use zeroize::Zeroizing;

#[derive(Arbitrary, Debug)]
struct Input {
    shares: u8,
    threshold: u8,
    key: [u8; 32],
    /// Which shares to join, as indices (taken modulo the share count).
    pick: Vec<u8>,
    base64: bool,
    /// Shares as typed, joined like `sys/unseal` joins them.
    typed: Vec<String>,
}

/// The shares `sys/unseal` would keep: the right length, no repeats.
fn accepted(typed: &[String], shares: u32) -> Vec<Zeroizing<Vec<u8>>> {
    let mut kept: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for text in typed {
        let Ok(bytes) = decode_share(text) else {
            continue;
        };
        if let Ok(direct) = hex::decode(text.trim()) {
            assert_eq!(*bytes, direct);
        }
        if bytes.len() == share_len(shares) && !kept.contains(&bytes) {
            kept.push(bytes);
        }
    }
    kept
}

fuzz_target!(|input: Input| {
    let shares = u32::from(input.shares.max(1));
    let threshold = u32::from(input.threshold);

    let typed = accepted(&input.typed[..input.typed.len().min(8)], shares);
    if !typed.is_empty() {
        let _ = combine(&typed, shares);
    }

    // Up to 20 shares: joining costs threshold² per byte, and 255 shares
    // would run at a few inputs a second.
    let shares = 1 + shares % 20;
    if check_parameters(shares, threshold).is_err() {
        return;
    }
    let key = Key::from_slice(&input.key).expect("32 bytes");
    let parts = split(&key, shares, threshold).expect("valid parameters");
    assert_eq!(parts.len(), shares as usize);

    // `threshold` distinct shares, in the order `pick` says.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    for (i, &p) in input.pick.iter().enumerate().take(order.len()) {
        let j = i + usize::from(p) % (order.len() - i);
        order.swap(i, j);
    }
    let chosen: Vec<String> = order[..threshold as usize]
        .iter()
        .map(|&i| {
            if input.base64 {
                BASE64.encode(&parts[i])
            } else {
                hex::encode(&parts[i])
            }
        })
        .collect();
    let decoded = accepted(&chosen, shares);
    assert_eq!(decoded.len(), threshold as usize);
    let joined = combine(&decoded, shares).expect("valid shares join");
    assert_eq!(joined.expose(), key.expose());

    if threshold > 1 {
        let fewer = combine(&decoded[..threshold as usize - 1], shares);
        assert!(fewer.is_err() || fewer.unwrap().expose() != key.expose());
    }
});
