//! Shared helpers: the three real templates of the seed document, cut out as they stand.

#![allow(dead_code)]

use flotilla_spec::TemplateSource;

/// The seed document holding three templates printed inside markdown: `shared/seeds/000_…` in the
/// reference folder beside the repository, found from whichever crate includes this module.
pub fn seed_document() -> String {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = here
        .ancestors()
        .map(|a| a.join("shared/seeds/000_92ab6873bcd865bc.txt"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("the seed document ../shared/seeds/000_92ab6873bcd865bc.txt is not beside the repository")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// File names given to the three templates, in seed order.
pub const NAMES: [&str; 3] = ["gb-lon.tmpl", "nl-ams.tmpl", "ch-gva-2.tmpl"];

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

/// The three templates, byte for byte: each runs from the first `\####` header line after prose to its
/// `export CLOUDHOST=` line, inclusive.
pub fn seed_templates() -> [String; 3] {
    let seed = seed_document();
    let mut templates = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in seed.split_inclusive('\n') {
        if start.is_none() && line.starts_with("\\####") {
            start = Some(offset);
        }
        offset += line.len();
        if let Some(begin) = start
            && line.starts_with("export CLOUDHOST=")
        {
            templates.push(seed[begin..offset].to_owned());
            start = None;
        }
    }
    let templates: [String; 3] = templates
        .try_into()
        .expect("the seed holds exactly three templates");
    for (text, name) in templates.iter().zip(NAMES) {
        let region = name.trim_end_matches(".tmpl");
        assert!(
            text.contains(&format!("REGION=\"{region}\"")),
            "{name} is not the {region} template"
        );
    }
    templates
}

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
