//! Splitting the unseal key into Shamir shares and joining them again.
//!
//! The arithmetic is `vsss-rs` (GF(256), audited). A share is one byte of
//! x-coordinate followed by 32 bytes of y-values. As in Vault, a single
//! share (`n = 1`) is the unseal key itself.

use zeroize::Zeroizing;

use super::crypto::{KEY_LEN, Key};

/// Bytes of a share when `n > 1`.
pub const SHARE_LEN: usize = KEY_LEN + 1;
/// At most 255 shares exist in GF(256).
pub const MAX_SHARES: u32 = 255;

/// Why shares could not be made or joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    #[error("{0}")]
    Parameters(String),
    #[error("the key shares are not valid shares of one key")]
    InvalidShares,
}

/// Checks share count and threshold the way Vault does.
pub fn check_parameters(shares: u32, threshold: u32) -> Result<(), ShamirError> {
    let bad = |m: &str| Err(ShamirError::Parameters(m.to_owned()));
    if shares == 0 {
        return bad("secret_shares must be at least 1");
    }
    if shares > MAX_SHARES {
        return bad("secret_shares must be at most 255");
    }
    if threshold == 0 {
        return bad("secret_threshold must be at least 1");
    }
    if threshold > shares {
        return bad("secret_threshold cannot be larger than secret_shares");
    }
    if shares > 1 && threshold == 1 {
        return bad("secret_threshold must be greater than one for multiple shares");
    }
    Ok(())
}

/// Splits `key` into `shares` shares of which any `threshold` recover it.
pub fn split(
    key: &Key,
    shares: u32,
    threshold: u32,
) -> Result<Vec<Zeroizing<Vec<u8>>>, ShamirError> {
    check_parameters(shares, threshold)?;
    if shares == 1 {
        return Ok(vec![Zeroizing::new(key.expose().to_vec())]);
    }
    let rng = rand_core::UnwrapErr(getrandom::SysRng);
    let parts = vsss_rs::Gf256::split_bytes(threshold as usize, shares as usize, key.expose(), rng)
        .map_err(|_| ShamirError::Parameters("could not split the key".to_owned()))?;
    Ok(parts.into_iter().map(Zeroizing::new).collect())
}

/// Joins `threshold` shares (of a set of `shares`) into the key.
///
/// Wrong shares of the right shape join into a wrong key; the caller finds
/// that out when the key fails to open the sealed root key.
pub fn combine(parts: &[Zeroizing<Vec<u8>>], shares: u32) -> Result<Key, ShamirError> {
    if shares == 1 {
        let [only] = parts else {
            return Err(ShamirError::InvalidShares);
        };
        return Key::from_slice(only).map_err(|_| ShamirError::InvalidShares);
    }
    if parts.iter().any(|p| p.len() != SHARE_LEN) {
        return Err(ShamirError::InvalidShares);
    }
    let owned: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    let joined = vsss_rs::Gf256::combine_bytes(&owned).map(Zeroizing::new);
    // `owned` holds copies of the shares: wipe them before anything else.
    for mut part in owned {
        zeroize::Zeroize::zeroize(&mut part);
    }
    let joined = joined.map_err(|_| ShamirError::InvalidShares)?;
    Key::from_slice(&joined).map_err(|_| ShamirError::InvalidShares)
}

/// Checks the length a share must have for a set of `shares`.
pub fn share_len(shares: u32) -> usize {
    if shares == 1 { KEY_LEN } else { SHARE_LEN }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::generate().unwrap()
    }

    #[test]
    fn any_threshold_subset_recovers_the_key() {
        let k = key();
        let parts = split(&k, 5, 3).unwrap();
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| p.len() == SHARE_LEN));
        for subset in [[0, 1, 2], [0, 2, 4], [4, 3, 1], [2, 3, 4]] {
            let chosen: Vec<_> = subset.iter().map(|&i| parts[i].clone()).collect();
            assert_eq!(combine(&chosen, 5).unwrap().expose(), k.expose());
        }
    }

    #[test]
    fn too_few_shares_give_a_different_key() {
        let k = key();
        let parts = split(&k, 5, 3).unwrap();
        let two = vec![parts[0].clone(), parts[1].clone()];
        let joined = combine(&two, 5).unwrap();
        assert_ne!(joined.expose(), k.expose());
    }

    #[test]
    fn shares_of_another_key_do_not_recover_this_one() {
        let (k1, k2) = (key(), key());
        let a = split(&k1, 3, 2).unwrap();
        let b = split(&k2, 3, 2).unwrap();
        let mixed = vec![a[0].clone(), b[1].clone()];
        assert_ne!(combine(&mixed, 3).unwrap().expose(), k1.expose());
    }

    #[test]
    fn malformed_shares_are_refused() {
        let parts = split(&key(), 3, 2).unwrap();
        let short = vec![parts[0].clone(), Zeroizing::new(parts[1][..10].to_vec())];
        assert_eq!(combine(&short, 3).unwrap_err(), ShamirError::InvalidShares);
        let dup = vec![parts[0].clone(), parts[0].clone()];
        assert_eq!(combine(&dup, 3).unwrap_err(), ShamirError::InvalidShares);
        let mut zero_x = parts[1].clone();
        zero_x[0] = 0;
        assert_eq!(
            combine(&[parts[0].clone(), zero_x], 3).unwrap_err(),
            ShamirError::InvalidShares
        );
    }

    #[test]
    fn single_share_is_the_key() {
        let k = key();
        let parts = split(&k, 1, 1).unwrap();
        assert_eq!(&parts[0][..], k.expose());
        assert_eq!(combine(&parts, 1).unwrap().expose(), k.expose());
    }

    #[test]
    fn parameters_are_checked() {
        assert!(check_parameters(0, 0).is_err());
        assert!(check_parameters(3, 4).is_err());
        assert!(check_parameters(3, 1).is_err());
        assert!(check_parameters(256, 3).is_err());
        assert!(check_parameters(1, 1).is_ok());
        assert!(check_parameters(5, 3).is_ok());
        assert!(check_parameters(255, 255).is_ok());
    }
}
