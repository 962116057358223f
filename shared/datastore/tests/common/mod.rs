//! Helpers shared by the datastore tests: regions imported from synthetic toolkit templates, endpoints
//! where nothing listens, and a scripted HTTP server that counts the requests it gets.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use flotilla_integration_tests::TestS3;
use flotilla_spec::{Region, RegionSecrets, TemplateSource, import_templates};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One region imported from a minimal single-region template whose `S3_*` lists are as given
/// (`|`-separated, entry N of each forming endpoint N).
pub fn region(hosts: &str, locations: &str, access_keys: &str, secret_keys: &str) -> (Region, RegionSecrets) {
    let text = format!(
        r#"export CLOUDHOST="linode"
export REGION="nl-ams"
export TOKEN="tok"
export BUILD_IDENTIFIER="test-ds"
export WEBSITE_URL="www.datastore-test.uk"
export DNS_CHOICE="cloudflare"
export DNS_USERNAME="a@b.c"
export DNS_SECURITY_KEY="k"
export NO_WEBSERVERS="1"
export VPC_NAME="vpc"
export VPC_IP_RANGE="10.0.1.0/24"
export DATABASE_INSTALLATION_TYPE="MySQL"
export BUILD_ARCHIVE_CHOICE="hourly"
export S3_ACCESS_KEY="{access_keys}"
export S3_SECRET_KEY="{secret_keys}"
export S3_HOST_BASE="{hosts}"
export S3_LOCATION="{locations}"
export WS_SERVER_TYPE="g6-nanode-1"
export AS_SERVER_TYPE="g6-nanode-1"
export DB_SERVER_TYPE="g6-nanode-1"
export MULTI_REGION="0"
export PRIMARY_REGION="1"
"#
    );
    let import = match import_templates(&[TemplateSource::new("nl-ams.tmpl", text)]) {
        Ok(import) => import,
        Err(d) => panic!("template does not import:\n{d}"),
    };
    let region = import.deployment.regions.into_iter().next().unwrap();
    let secrets = import.secrets.regions.get(&region.name).cloned().unwrap();
    (region, secrets)
}

/// A region whose endpoints are the given test servers, presented as three VPS providers' hosts (the
/// first `servers.len()` of Linode, DigitalOcean, Exoscale); `None` is an endpoint where nothing
/// listens. Returns the region, its secrets and the overrides that point each endpoint at its server.
pub fn region_for(servers: &[Option<&TestS3>]) -> (Region, RegionSecrets, Vec<String>) {
    const HOSTS: [&str; 3] = [
        "nl-ams-1.linodeobjects.com",
        "ams3.digitaloceanspaces.com",
        "sos-ch-gva-2.exo.io",
    ];
    let n = servers.len();
    let key = |f: fn(&TestS3) -> &str| {
        servers
            .iter()
            .map(|s| s.map_or("AKDEAD", f).to_owned())
            .collect::<Vec<_>>()
            .join("|")
    };
    let urls: Vec<String> = servers
        .iter()
        .map(|s| s.map_or_else(dead_endpoint, |s| s.endpoint.clone()))
        .collect();
    let (region, secrets) = region(
        &HOSTS[..n].join("|"),
        &vec!["US"; n].join("|"),
        &key(|s| &s.access_key),
        &key(|s| &s.secret_key),
    );
    (region, secrets, urls)
}

/// `http://127.0.0.1:<port>` where nothing listens.
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", flotilla_integration_tests::free_port())
}

/// A server that accepts connections and closes them at once, counting them.
pub async fn hang_up_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (url, count)
}

/// A server that answers every request with `status` and an S3 error document carrying `code`, and
/// counts the requests.
pub async fn scripted_server(status: u16, code: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // One request per connection: read the head and the body, answer, close.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>scripted {code}</Message><RequestId>r1</RequestId></Error>"
                );
                let response = format!(
                    "HTTP/1.1 {status} Scripted\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, count)
}

/// A server that accepts connections, reads what comes and never answers, counting the connections.
pub async fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                while socket.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
            });
        }
    });
    (url, count)
}
