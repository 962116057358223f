//! Root passwords for new instances. Linode requires one when deploying an image; Flotilla logs in with SSH
//! keys, so the password is random, strong, sent once in the create body and then forgotten.

use rand::Rng;

/// Letters, digits and punctuation that need no quoting anywhere.
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.+=!@#%^*";

/// Characters in a password (Linode allows 7–128).
const LENGTH: usize = 40;

/// A password from the thread's CSPRNG holding upper and lower case letters, digits and punctuation (so it
/// passes Linode's strength check).
pub(crate) fn root_password() -> String {
    let mut rng = rand::rng();
    loop {
        let candidate: String = (0..LENGTH)
            .filter_map(|_| ALPHABET.get(rng.random_range(0..ALPHABET.len())))
            .map(|&b| char::from(b))
            .collect();
        let has = |f: fn(&char) -> bool| candidate.chars().any(|c| f(&c));
        if has(char::is_ascii_uppercase)
            && has(char::is_ascii_lowercase)
            && has(char::is_ascii_digit)
            && has(char::is_ascii_punctuation)
        {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_mixed_and_different() {
        let a = root_password();
        let b = root_password();
        assert_eq!(a.len(), LENGTH);
        assert_ne!(a, b);
        assert!(a.chars().any(|c| c.is_ascii_punctuation()));
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
    }
}
