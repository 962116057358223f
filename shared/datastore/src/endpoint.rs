//! Where one datastore endpoint is and how to talk to it: its URL, its SigV4 region string and whether
//! buckets are addressed path-style or virtual-host-style.
//!
//! The rules are on [`EndpointConfig`].

use flotilla_spec::{DatastoreEndpoint, DatastoreProvider};

/// The region string used when nothing better is known, and Vultr's.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How to reach one endpoint, derived from a spec endpoint by [`EndpointConfig::for_endpoint`]:
///
/// | provider | host base | SigV4 region | addressing |
/// |---|---|---|---|
/// | Linode | `{cluster}.linodeobjects.com` | the cluster id, e.g. `nl-ams-1` | path-style |
/// | DigitalOcean Spaces | `{region}.digitaloceanspaces.com` | the region slug, e.g. `ams3` | path-style |
/// | Vultr | `{cluster}.vultrobjects.com` | `us-east-1` | path-style |
/// | Exoscale SOS | `sos-{zone}.exo.io` | the zone, e.g. `ch-gva-2` | path-style |
/// | AWS S3 (generic) | `s3.{region}.amazonaws.com` | the region (`s3.amazonaws.com`: `us-east-1`) | virtual-host |
/// | other S3 (generic) | any | from `S3_LOCATION` | path-style |
///
/// Path-style (`https://host/bucket/key`) works with every one of the VPS providers and with MinIO,
/// needs no wildcard DNS or certificate, and works for bucket names with dots, so it is the default.
/// Only AWS gets virtual-host-style addressing, which AWS recommends (it has announced the end of
/// path-style requests); there, bucket names must not contain dots (TLS wildcard certificates).
///
/// When a host does not have its provider's usual form (e.g. a custom domain chosen with
/// `DATASTORE_CHOICE`), the region comes from the endpoint's `location` (`S3_LOCATION`), where the
/// toolkit's default `US` (and an empty value) means `us-east-1` and `EU` means `eu-west-1`, as with
/// s3cmd. For the four VPS providers the location is otherwise ignored: the toolkit's templates carry
/// `US` for Linode, which is not a Linode cluster.
///
/// A host base may come with or without a scheme (`https` when absent) and with a port; it may not have
/// a path or user information. A provider the spec could not recognise (`s3`, generic) is recognised
/// again from the host of such a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Who runs the endpoint.
    pub provider: DatastoreProvider,
    /// Base URL requests go to, e.g. `https://nl-ams-1.linodeobjects.com` (no trailing slash).
    pub url: String,
    /// The region string requests are signed for (SigV4).
    pub region: String,
    /// Whether buckets are addressed as a path (`host/bucket`) rather than a subdomain (`bucket.host`).
    pub path_style: bool,
    /// The `LocationConstraint` sent when a bucket is created: set for AWS regions other than
    /// `us-east-1` only, because the VPS providers take the location from the endpoint.
    pub location_constraint: Option<String>,
}

/// Why a host base or URL cannot be used as an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{input}\" is not a usable S3 endpoint: {reason}")]
pub struct EndpointError {
    /// The text as given, with any user information blanked out.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl EndpointConfig {
    /// Derives URL, region string and addressing style from a spec endpoint (see the type's docs).
    pub fn for_endpoint(endpoint: &DatastoreEndpoint) -> Result<Self, EndpointError> {
        let base = BaseUrl::parse(&endpoint.host_base)?;
        let host = base.host.as_str();
        let aws = is_aws(host);
        // The spec recognises providers from bare host names; look again at a URL's host.
        let provider = match endpoint.provider {
            DatastoreProvider::Generic => DatastoreProvider::from_host_base(host),
            chosen => chosen,
        };
        let region = match provider {
            DatastoreProvider::Linode => label_before(host, ".linodeobjects.com"),
            DatastoreProvider::DigitalOcean => label_before(host, ".digitaloceanspaces.com"),
            DatastoreProvider::Vultr => Some(DEFAULT_REGION.to_owned()),
            DatastoreProvider::Exoscale => {
                label_before(host, ".exo.io").and_then(|label| label.strip_prefix("sos-").map(str::to_owned))
            }
            DatastoreProvider::Generic if aws => aws_region(host),
            DatastoreProvider::Generic => None,
        }
        .filter(|region| !region.is_empty())
        .unwrap_or_else(|| region_from_location(&endpoint.location));
        let generic_aws = provider == DatastoreProvider::Generic && aws;
        Ok(Self {
            provider,
            url: base.url(),
            location_constraint: (generic_aws && region != DEFAULT_REGION).then(|| region.clone()),
            region,
            path_style: !generic_aws,
        })
    }

    /// The same endpoint reached at another URL (the simulator, a test server, a proxy): the region
    /// string is kept, addressing becomes path-style (an IP address has no bucket subdomains) and no
    /// location constraint is sent. The URL may omit its scheme (`https` then).
    pub fn with_url(self, url: &str) -> Result<Self, EndpointError> {
        let base = BaseUrl::parse(url)?;
        Ok(Self {
            url: base.url(),
            path_style: true,
            location_constraint: None,
            ..self
        })
    }
}

/// A parsed host base: scheme, lowercase host and optional port.
struct BaseUrl {
    scheme: &'static str,
    host: String,
    port: Option<u16>,
}

impl BaseUrl {
    fn parse(input: &str) -> Result<Self, EndpointError> {
        let fail = |reason: &str| EndpointError {
            input: shown(input),
            reason: reason.to_owned(),
        };
        let text = input.trim();
        let (scheme, rest) = match text.split_once("://") {
            None => ("https", text),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => ("https", rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => ("http", rest),
            Some(_) => return Err(fail("the scheme must be http or https")),
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() {
            return Err(fail("there is no host"));
        }
        if authority.contains('/') {
            return Err(fail(
                "it must be a host (with an optional scheme and port), without a path",
            ));
        }
        if authority.contains('@') {
            return Err(fail("it must not contain user information"));
        }
        let (host, port) =
            split_port(authority).ok_or_else(|| fail("the port is not a number between 1 and 65535"))?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        let ipv6 = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
        if host.is_empty() || !(ipv6 || host.chars().all(valid)) {
            return Err(fail("the host contains characters a host name cannot have"));
        }
        Ok(Self { scheme, host, port })
    }

    fn url(&self) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}", self.scheme, self.host),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }
}

/// Splits `host[:port]` (IPv6 hosts in brackets); `None` when a port is present but not valid.
fn split_port(authority: &str) -> Option<(&str, Option<u16>)> {
    match authority.rsplit_once(':') {
        // A colon inside brackets belongs to an IPv6 address.
        Some((host, port)) if !port.contains(']') => match port.parse::<u16>() {
            Ok(0) | Err(_) => None,
            Ok(port) => Some((host, Some(port))),
        },
        _ => Some((authority, None)),
    }
}

/// The input as shown in errors: user information (which may hold a password) is blanked out.
fn shown(input: &str) -> String {
    match input.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            format!(
                "{scheme}://<redacted>@{}",
                rest.rsplit_once('@').map_or("", |(_, host)| host)
            )
        }
        None if input.contains('@') => {
            format!(
                "<redacted>@{}",
                input.rsplit_once('@').map_or("", |(_, host)| host)
            )
        }
        _ => input.to_owned(),
    }
}

/// The label right before `suffix`: `nl-ams-1` for `nl-ams-1.linodeobjects.com`.
fn label_before(host: &str, suffix: &str) -> Option<String> {
    let prefix = host.strip_suffix(suffix)?;
    prefix.rsplit('.').next().map(str::to_owned)
}

fn is_aws(host: &str) -> bool {
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// The region of an AWS S3 host: `s3.eu-west-2.amazonaws.com`, `s3.dualstack.eu-west-2.amazonaws.com`,
/// the legacy `s3-eu-west-2.amazonaws.com`; the global `s3.amazonaws.com` and `s3-external-1` are
/// `us-east-1`.
fn aws_region(host: &str) -> Option<String> {
    let prefix = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let labels: Vec<&str> = prefix.split('.').collect();
    match labels.as_slice() {
        ["s3"] | ["s3-external-1"] => Some(DEFAULT_REGION.to_owned()),
        [single] => single.strip_prefix("s3-").map(str::to_owned),
        [.., "s3"] => Some(DEFAULT_REGION.to_owned()),
        [.., last] => Some((*last).to_owned()),
        [] => None,
    }
}

/// The region string an `S3_LOCATION` value stands for.
fn region_from_location(location: &str) -> String {
    let location = location.trim();
    if location.is_empty() || location.eq_ignore_ascii_case("US") {
        DEFAULT_REGION.to_owned()
    } else if location.eq_ignore_ascii_case("EU") {
        "eu-west-1".to_owned()
    } else {
        location.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, location: &str) -> EndpointConfig {
        let endpoint = DatastoreEndpoint {
            provider: DatastoreProvider::from_host_base(host),
            host_base: host.to_owned(),
            location: location.to_owned(),
        };
        EndpointConfig::for_endpoint(&endpoint).unwrap()
    }

    fn expect(host: &str, location: &str, url: &str, region: &str, path_style: bool) {
        let c = config(host, location);
        assert_eq!(
            (c.url.as_str(), c.region.as_str(), c.path_style),
            (url, region, path_style),
            "{host}"
        );
    }

    #[test]
    fn linode_signs_for_the_cluster() {
        let c = config("nl-ams-1.linodeobjects.com", "US");
        assert_eq!(c.provider, DatastoreProvider::Linode);
        expect(
            "nl-ams-1.linodeobjects.com",
            "US",
            "https://nl-ams-1.linodeobjects.com",
            "nl-ams-1",
            true,
        );
        expect(
            "us-east-1.linodeobjects.com",
            "",
            "https://us-east-1.linodeobjects.com",
            "us-east-1",
            true,
        );
        expect(
            "HTTPS://GB-LON-1.LinodeObjects.com/",
            "US",
            "https://gb-lon-1.linodeobjects.com",
            "gb-lon-1",
            true,
        );
        assert_eq!(c.location_constraint, None);
        assert_eq!(
            config("http://nl-ams-1.linodeobjects.com:8080", "US").provider,
            DatastoreProvider::Linode
        );
    }

    #[test]
    fn digitalocean_signs_for_the_region_slug() {
        let c = config("ams3.digitaloceanspaces.com", "US");
        assert_eq!(c.provider, DatastoreProvider::DigitalOcean);
        expect(
            "ams3.digitaloceanspaces.com",
            "US",
            "https://ams3.digitaloceanspaces.com",
            "ams3",
            true,
        );
        expect(
            "fra1.digitaloceanspaces.com",
            "fra1",
            "https://fra1.digitaloceanspaces.com",
            "fra1",
            true,
        );
    }

    #[test]
    fn vultr_signs_for_us_east_1() {
        assert_eq!(
            config("ewr1.vultrobjects.com", "US").provider,
            DatastoreProvider::Vultr
        );
        expect(
            "ewr1.vultrobjects.com",
            "US",
            "https://ewr1.vultrobjects.com",
            "us-east-1",
            true,
        );
        expect(
            "ams1.vultrobjects.com",
            "ams1",
            "https://ams1.vultrobjects.com",
            "us-east-1",
            true,
        );
    }

    #[test]
    fn exoscale_signs_for_the_zone() {
        assert_eq!(
            config("sos-ch-gva-2.exo.io", "US").provider,
            DatastoreProvider::Exoscale
        );
        expect(
            "sos-ch-gva-2.exo.io",
            "US",
            "https://sos-ch-gva-2.exo.io",
            "ch-gva-2",
            true,
        );
        expect(
            "sos-de-fra-1.exo.io",
            "",
            "https://sos-de-fra-1.exo.io",
            "de-fra-1",
            true,
        );
    }

    #[test]
    fn aws_uses_the_region_and_virtual_hosts() {
        expect(
            "s3.eu-west-2.amazonaws.com",
            "US",
            "https://s3.eu-west-2.amazonaws.com",
            "eu-west-2",
            false,
        );
        expect(
            "s3.dualstack.ap-south-1.amazonaws.com",
            "US",
            "https://s3.dualstack.ap-south-1.amazonaws.com",
            "ap-south-1",
            false,
        );
        expect(
            "s3-eu-west-1.amazonaws.com",
            "US",
            "https://s3-eu-west-1.amazonaws.com",
            "eu-west-1",
            false,
        );
        expect(
            "s3.amazonaws.com",
            "US",
            "https://s3.amazonaws.com",
            "us-east-1",
            false,
        );
        assert_eq!(
            config("s3.eu-west-2.amazonaws.com", "US")
                .location_constraint
                .as_deref(),
            Some("eu-west-2")
        );
        assert_eq!(
            config("s3.us-east-1.amazonaws.com", "US").location_constraint,
            None
        );
    }

    #[test]
    fn other_hosts_use_the_location() {
        expect(
            "minio.internal:9000",
            "US",
            "https://minio.internal:9000",
            "us-east-1",
            true,
        );
        expect(
            "http://10.0.0.5:9000",
            "eu-central-1",
            "http://10.0.0.5:9000",
            "eu-central-1",
            true,
        );
        expect(
            "storage.example.com",
            "EU",
            "https://storage.example.com",
            "eu-west-1",
            true,
        );
        // A provider chosen with DATASTORE_CHOICE for a host of another form.
        let endpoint = DatastoreEndpoint {
            provider: DatastoreProvider::Linode,
            host_base: "objects.example.com".into(),
            location: "nl-ams-1".into(),
        };
        let c = EndpointConfig::for_endpoint(&endpoint).unwrap();
        assert_eq!((c.region.as_str(), c.path_style), ("nl-ams-1", true));
    }

    #[test]
    fn overrides_keep_the_region_and_go_path_style() {
        let c = config("s3.eu-west-2.amazonaws.com", "US")
            .with_url("http://127.0.0.1:9000")
            .unwrap();
        assert_eq!(c.url, "http://127.0.0.1:9000");
        assert_eq!(c.region, "eu-west-2");
        assert!(c.path_style);
        assert_eq!(c.location_constraint, None);
        let c = config("nl-ams-1.linodeobjects.com", "US")
            .with_url("[::1]:9000")
            .unwrap();
        assert_eq!(c.url, "https://[::1]:9000");
    }

    #[test]
    fn unusable_hosts_are_refused() {
        for bad in [
            "",
            "https://",
            "ftp://host",
            "host/path",
            "user:pw@host",
            "host:0",
            "host:99999",
            "host:port",
            "bad host",
        ] {
            let endpoint = DatastoreEndpoint {
                provider: DatastoreProvider::Generic,
                host_base: bad.to_owned(),
                location: "US".into(),
            };
            let err = EndpointConfig::for_endpoint(&endpoint).unwrap_err();
            assert!(!err.to_string().contains("pw"), "{err}");
        }
        let err = EndpointConfig::for_endpoint(&DatastoreEndpoint {
            provider: DatastoreProvider::Generic,
            host_base: "https://key:secret@host".into(),
            location: "US".into(),
        })
        .unwrap_err();
        assert_eq!(err.input, "https://<redacted>@host");
    }
}
