//! Shared helpers: the three real templates of the seed document, cut out as they stand.

#![allow(dead_code, unused_imports)]

use flotilla_spec::TemplateSource;

pub use flotilla_integration_tests::templates::{SEED_NAMES as NAMES, seed_document, seed_templates};

/// Every secret value written in the seed templates.
pub const SEED_SECRETS: &[&str] = &[
    "hjdd738jdaq7fhwk2bdif8rhdnqi238fks92jdkfojshf93jsfhndjk67",
    "JH56HJ78WE4T6U8OO90",
    "Hgdj89K2w3eyrb1289sfjDewjk",
    "GPIJ6HS1MY6LU7QE243V",
    "Ru9aX4oBxK3W1Ga1eTNj4c96SV8AQzsk4p6KXdvT",
    "EXO7hfgu476gfvfnsu4nfbgy223dhf",
    "jcbh846tfg2vdugihdhevuft2ojknbub374fbjbsksbd",
    "cfjdhfh38jdh2hdhfjw8r21hd73is9d",
    "github_pat_11BELT3NQ03fCHpjdjn7y3hjdhkf37DHHS8jfh38fjfy3o9qoskfogjJHHJDJkfhskfu3osdjf",
    "gf72fdhkocnv28de7e8ifjjw8f2",
    "hfjh47fi328rjfh28folmajfigj",
    "hfhuf83jfhfu73jd",
];

/// Credential identifiers of the seed: kept in the secrets file rather than the spec, but not redacted.
pub const SEED_CREDENTIAL_NAMES: &[&str] = &["dnsusername@email.com"];

/// Template sources for `import_templates`.
pub fn sources(texts: &[String]) -> Vec<TemplateSource> {
    texts
        .iter()
        .zip(NAMES)
        .map(|(text, name)| TemplateSource::new(name, text.clone()))
        .collect()
}

/// The 1-based number of the first line containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line has {needle:?}"))
}

/// Replaces exactly one occurrence of `from`.
pub fn replace_once(text: &mut String, from: &str, to: &str) {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur exactly once");
    *text = text.replacen(from, to, 1);
}

/// Removes the line containing `needle`.
pub fn remove_line(text: &mut String, needle: &str) {
    let kept: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| !l.contains(needle))
        .collect();
    assert_eq!(
        kept.len() + 1,
        text.split_inclusive('\n').count(),
        "{needle:?} must be on exactly one line"
    );
    *text = kept.concat();
}
