//! The CI smoke of the fuzz targets (`fuzz/`): every file of the committed corpus through its target, then
//! random bytes and mutated corpus files through every target (proptest). A panic is a bug, as under the
//! fuzzer; a failing case is reported by proptest with its minimal input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use flotilla_fuzzing::{TARGETS, Target, proto_kinds, provider_answer_names};
use proptest::prelude::*;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Corpus files by target: each file's name and bytes, in name order.
type Corpus = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

/// The committed corpus.
fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        TARGETS
            .iter()
            .map(|(name, _)| {
                let dir = fuzz_dir().join("corpus").join(name);
                let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .map(|entry| {
                        let path = entry.unwrap().path();
                        let name = path.file_name().unwrap().to_string_lossy().into_owned();
                        (name, fs::read(&path).unwrap())
                    })
                    .collect();
                files.sort();
                (*name, files)
            })
            .collect()
    })
}

fn target(name: &str) -> Target {
    TARGETS.iter().find(|(n, _)| *n == name).unwrap().1
}

#[test]
fn every_corpus_file_runs_through_its_target() {
    for (name, files) in corpus() {
        assert!(
            files.len() >= 10,
            "fuzz/corpus/{name} holds {} files",
            files.len()
        );
        let run = target(name);
        for (file, bytes) in files {
            if let Err(panic) = std::panic::catch_unwind(|| run(bytes)) {
                panic!("fuzz/corpus/{name}/{file}: {panic:?}");
            }
        }
    }
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("flotilla_fuzzing::{name}(data)")),
            "{}",
            source.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

#[test]
fn the_proto_target_decodes_every_kind_there_is() {
    let schemas: Vec<&str> = flotilla_proto::all_schemas()
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
    assert_eq!(proto_kinds(), schemas);
    assert!(proto_kinds().len() <= 256, "one byte picks the kind");
}

#[test]
fn every_provider_has_answers_to_read() {
    let providers = provider_answer_names();
    let names: Vec<&str> = providers.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        names,
        ["linode", "digitalocean", "vultr", "exoscale", "cloudflare"]
    );
    for (provider, answers) in providers {
        assert!(!answers.is_empty(), "{provider}");
    }
}

/// The providers' own answers beside the repository (`../shared/provider-specs`), when it is there: the
/// recorded Linode traffic and the Cloudflare fixtures, each body through every reader of its provider and
/// as an error answer.
#[test]
fn the_providers_recorded_answers_run_through_every_reader() {
    let specs = fuzz_dir().join("../../shared/provider-specs");
    if !specs.is_dir() {
        eprintln!("no {}: skipped", specs.display());
        return;
    }
    let mut bodies: Vec<(u8, Vec<u8>)> = Vec::new();
    for entry in fs::read_dir(specs.join("cloudflare/fixtures")).unwrap() {
        bodies.push((4, fs::read(entry.unwrap().path()).unwrap()));
    }
    for entry in fs::read_dir(specs.join("linode/recordings")).unwrap() {
        let text = fs::read_to_string(entry.unwrap().path()).unwrap();
        let cassette: serde_json::Value = serde_norway::from_str(&text).unwrap();
        for interaction in cassette["interactions"].as_array().into_iter().flatten() {
            if let Some(body) = interaction["response"]["body"].as_str() {
                bodies.push((0, body.as_bytes().to_vec()));
            }
        }
    }
    assert!(bodies.len() > 50, "{} recorded answers", bodies.len());
    let run = target("provider_answers");
    let answers = provider_answer_names();
    for (provider, body) in &bodies {
        for answer in 0..=answers[usize::from(*provider)].1.len() {
            let mut input = vec![*provider, u8::try_from(answer).unwrap()];
            if answer == answers[usize::from(*provider)].1.len() {
                input.extend_from_slice(&[1, 44, 0]); // HTTP 400, no headers
            }
            input.extend_from_slice(body);
            run(&input);
        }
    }
}

/// One change to a corpus file.
#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite the byte at (position modulo length).
    Set(usize, u8),
    /// Insert bytes at (position modulo length + 1).
    Insert(usize, Vec<u8>),
    /// Remove up to `n` bytes from (position modulo length).
    Remove(usize, usize),
    /// Keep the first (position modulo length + 1) bytes.
    Truncate(usize),
    /// Repeat a slice (a deeper nesting, a longer list).
    Repeat(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Set(p, b)),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(vec![
                    b"{".to_vec(),
                    b"[".to_vec(),
                    b"\"".to_vec(),
                    b"\\".to_vec(),
                    b"\n".to_vec(),
                    b"=".to_vec(),
                    b"\x0c".to_vec(),
                    b"null".to_vec(),
                    b"-1".to_vec(),
                    b"1e309".to_vec(),
                    b"18446744073709551616".to_vec(),
                    "\u{feff}é€😀".as_bytes().to_vec(),
                    b"\xc0\xdc\xff\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00".to_vec(),
                ]),
            ]
        )
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Mutation::Remove(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..32, 1usize..8).prop_map(|(p, n, k)| Mutation::Repeat(p, n, k)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Set(p, b) if len > 0 => bytes[p % len] = *b,
            Mutation::Insert(p, b) => {
                let at = p % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Mutation::Remove(p, n) if len > 0 => {
                let at = p % len;
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Truncate(p) if len > 0 => bytes.truncate(p % len + 1),
            Mutation::Repeat(p, n, k) if len > 0 => {
                let at = p % len;
                let slice = bytes[at..(at + n).min(len)].to_vec();
                for _ in 0..*k {
                    bytes.splice(at..at, slice.iter().copied());
                }
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes through every target (the first bytes pick kinds, answers and headers, so every
    /// decoder gets some).
    #[test]
    fn random_bytes_through_every_target(which in 0..TARGETS.len(), bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        (TARGETS[which].1)(&bytes);
    }

    /// Corpus files with a few changes through their target.
    #[test]
    fn mutated_corpus_files_through_their_target(
        which in 0..TARGETS.len(),
        file in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let (name, run) = TARGETS[which];
        let files = &corpus()[name];
        let (_, bytes) = &files[file % files.len()];
        run(&mutate(bytes.clone(), &mutations));
    }
}
