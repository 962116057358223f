//! DNS names: Flotilla uses fully qualified names; several providers name records relative to the zone.

/// The fully qualified name of `name` (relative, empty or `@` for the apex, or already qualified) in `zone`.
pub fn fqdn(name: &str, zone: &str) -> String {
    let name = name.trim_end_matches('.');
    let zone = zone.trim_end_matches('.');
    if name.is_empty() || name == "@" {
        return zone.to_owned();
    }
    if in_zone(name, zone).is_some() {
        return name.to_owned();
    }
    format!("{name}.{zone}")
}

/// `Some(prefix)` when `name` is `zone` (`Some("")`) or below it (`Some("www")`), case-insensitively and
/// ignoring trailing dots; `None` when it is outside the zone.
pub fn in_zone<'a>(name: &'a str, zone: &str) -> Option<&'a str> {
    let name = name.trim_end_matches('.');
    let zone = zone.trim_end_matches('.');
    if name.eq_ignore_ascii_case(zone) {
        return Some("");
    }
    let cut = name.len().checked_sub(zone.len() + 1)?;
    let (prefix, rest) = (name.get(..cut)?, name.get(cut..)?);
    let suffix = rest.strip_prefix('.')?;
    (suffix.eq_ignore_ascii_case(zone) && !prefix.is_empty()).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(fqdn("", "example.com"), "example.com");
        assert_eq!(fqdn("@", "example.com."), "example.com");
        assert_eq!(fqdn("www", "example.com"), "www.example.com");
        assert_eq!(fqdn("www.example.com.", "example.com"), "www.example.com");
        assert_eq!(in_zone("www.Example.com", "example.com"), Some("www"));
        assert_eq!(in_zone("example.com", "example.com."), Some(""));
        assert_eq!(in_zone("www.example.org", "example.com"), None);
        assert_eq!(in_zone("wwwexample.com", "example.com"), None);
        assert_eq!(in_zone("é.example.com", "example.com"), Some("é"));
    }
}
