//! TLS for tests: a private CA and a server certificate for `127.0.0.1` signed by it, as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The files of [`private_ca`].
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA's certificate (what a client trusts).
    pub ca: PathBuf,
    /// The server's certificate, for `127.0.0.1` and `localhost`.
    pub cert: PathBuf,
    /// The server's key.
    pub key: PathBuf,
}

/// A new private CA and a server certificate signed by it, written into `dir`.
pub fn private_ca(dir: &Path) -> TlsFiles {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("server parameters")
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.ca, ca_cert.pem()).expect("write the CA");
    std::fs::write(&files.cert, server_cert.pem()).expect("write the certificate");
    std::fs::write(&files.key, server_key.serialize_pem()).expect("write the key");
    files
}
