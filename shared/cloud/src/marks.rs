//! Ownership marks: how a resource Flotilla created says so, as provider tags or labels.
//!
//! Every resource we create carries the tag [`OWNER_TAG`] and one tag per mark: `fl-dep:<deployment>`,
//! `fl-reg:<region>`, `fl-role:<role>`, `fl-id:<resource id>`. These fit every provider's tag rules
//! (DigitalOcean: letters, digits, `-`, `_`, `:`; Linode: 3–50 characters; Vultr: free text) and become
//! Exoscale labels (`fl-dep` = `<deployment>` …). A value that would make a tag longer than 50 characters
//! is shortened to a prefix, `_` and a hash, the same way every time, so lookups by tag still match.
//! A resource without [`OWNER_TAG`] is the operator's and is never touched.

use std::collections::BTreeMap;

use flotilla_spec::Role;
use sha2::{Digest, Sha256};

/// The tag on every resource Flotilla owns.
pub const OWNER_TAG: &str = "flotilla";
/// Longest tag any provider accepts (Linode's limit).
const MAX_TAG_LEN: usize = 50;

const DEPLOYMENT: &str = "fl-dep";
const REGION: &str = "fl-reg";
const ROLE: &str = "fl-role";
const RESOURCE_ID: &str = "fl-id";

/// Who a resource belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marks {
    /// Deployment name.
    pub deployment: String,
    /// Region name (within the deployment).
    pub region: String,
    /// Machine role, for machines and per-role firewalls.
    pub role: Option<Role>,
    /// Our id for the resource, recorded before the create call (create fencing).
    pub resource_id: String,
}

impl Marks {
    /// The tags: [`OWNER_TAG`] and one `key:value` per mark.
    pub fn to_tags(&self) -> Vec<String> {
        let mut tags = vec![
            OWNER_TAG.to_owned(),
            tag(DEPLOYMENT, &self.deployment),
            tag(REGION, &self.region),
        ];
        if let Some(role) = self.role {
            tags.push(tag(ROLE, role.as_str()));
        }
        tags.push(tag(RESOURCE_ID, &self.resource_id));
        tags
    }

    /// The marks read back from tags; `None` unless [`OWNER_TAG`] and the deployment, region and resource id
    /// tags are all there. Values shortened on the way out come back shortened.
    pub fn from_tags<S: AsRef<str>>(tags: &[S]) -> Option<Self> {
        if !tags.iter().any(|t| t.as_ref() == OWNER_TAG) {
            return None;
        }
        let value = |key: &str| {
            let prefix = format!("{key}:");
            tags.iter()
                .find_map(|t| t.as_ref().strip_prefix(&prefix).map(str::to_owned))
        };
        Some(Self {
            deployment: value(DEPLOYMENT)?,
            region: value(REGION)?,
            role: value(ROLE).and_then(|r| r.parse().ok()),
            resource_id: value(RESOURCE_ID)?,
        })
    }

    /// The same marks as labels (Exoscale): `flotilla` = `true`, `fl-dep` = deployment, …
    pub fn to_labels(&self) -> BTreeMap<String, String> {
        self.to_tags()
            .into_iter()
            .map(|t| match t.split_once(':') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (t, "true".to_owned()),
            })
            .collect()
    }

    /// The marks read back from labels.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        let tags: Vec<String> = labels
            .iter()
            .map(|(k, v)| {
                if k == OWNER_TAG {
                    k.clone()
                } else {
                    format!("{k}:{v}")
                }
            })
            .collect();
        Self::from_tags(&tags)
    }
}

/// Which owned resources a list asks for: a deployment, optionally narrowed to a region and a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkFilter {
    /// Deployment name.
    pub deployment: String,
    /// Region name, or every region.
    pub region: Option<String>,
    /// Role, or every role.
    pub role: Option<Role>,
}

impl MarkFilter {
    /// Everything of `deployment`.
    pub fn deployment(deployment: impl Into<String>) -> Self {
        Self {
            deployment: deployment.into(),
            region: None,
            role: None,
        }
    }

    /// Everything of `deployment` in `region`.
    pub fn region(deployment: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            deployment: deployment.into(),
            region: Some(region.into()),
            role: None,
        }
    }

    /// The tags a provider that can filter on several at once (Linode's `X-Filter` with `+and`) asks for:
    /// the deployment's, and the region's when the filter names one, so a region's list costs the same
    /// however many machines the deployment's other regions hold. [`MarkFilter::matches`] narrows the rest.
    pub fn server_side_tags(&self) -> Vec<String> {
        let mut tags = vec![tag(DEPLOYMENT, &self.deployment)];
        if let Some(region) = &self.region {
            tags.push(tag(REGION, region));
        }
        tags
    }

    /// The one tag a provider that filters on a single tag (DigitalOcean's `tag_name`) asks for: the
    /// region's when the filter names one — a region's list then pages through that region's machines, not
    /// the whole deployment's; another deployment's region of the same name is narrowed out by
    /// [`MarkFilter::matches`] — else the deployment's.
    pub fn server_side_tag(&self) -> String {
        match &self.region {
            Some(region) => tag(REGION, region),
            None => tag(DEPLOYMENT, &self.deployment),
        }
    }

    /// Whether a resource's tags match the whole filter (and mark it as ours).
    pub fn matches<S: AsRef<str>>(&self, tags: &[S]) -> bool {
        let has = |t: &str| tags.iter().any(|x| x.as_ref() == t);
        has(OWNER_TAG)
            && has(&tag(DEPLOYMENT, &self.deployment))
            && self.region.as_ref().is_none_or(|r| has(&tag(REGION, r)))
            && self.role.is_none_or(|r| has(&tag(ROLE, r.as_str())))
    }

    /// [`MarkFilter::matches`] for labels.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        let tags: Vec<String> = labels
            .iter()
            .map(|(k, v)| {
                if k == OWNER_TAG {
                    k.clone()
                } else {
                    format!("{k}:{v}")
                }
            })
            .collect();
        self.matches(&tags)
    }
}

/// `key:value`, shortened to [`MAX_TAG_LEN`] with a stable hash when too long.
fn tag(key: &str, value: &str) -> String {
    let full = format!("{key}:{value}");
    if full.len() <= MAX_TAG_LEN {
        return full;
    }
    let digest = Sha256::digest(value.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    // key + ':' + prefix + '_' + 8 hex (DigitalOcean allows only letters, digits, '-', '_' and ':')
    let room = MAX_TAG_LEN - key.len() - 1 - 1 - hash.len();
    let mut end = room.min(value.len());
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{key}:{}_{hash}", &value[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(deployment: &str) -> Marks {
        Marks {
            deployment: deployment.into(),
            region: "gb-lon".into(),
            role: Some(Role::Webserver),
            resource_id: "01a20b6d-ec94".into(),
        }
    }

    #[test]
    fn tags_round_trip_and_filter() {
        let m = marks("www-codetesters-uk");
        let tags = m.to_tags();
        assert_eq!(
            tags,
            vec![
                "flotilla",
                "fl-dep:www-codetesters-uk",
                "fl-reg:gb-lon",
                "fl-role:webserver",
                "fl-id:01a20b6d-ec94"
            ]
        );
        assert_eq!(Marks::from_tags(&tags), Some(m.clone()));
        assert!(MarkFilter::deployment("www-codetesters-uk").matches(&tags));
        assert!(MarkFilter::region("www-codetesters-uk", "gb-lon").matches(&tags));
        assert!(!MarkFilter::region("www-codetesters-uk", "nl-ams").matches(&tags));
        assert!(!MarkFilter::deployment("www-other-uk").matches(&tags));
        let labels = m.to_labels();
        assert_eq!(labels["flotilla"], "true");
        assert_eq!(Marks::from_labels(&labels), Some(m));
        assert!(MarkFilter::deployment("www-codetesters-uk").matches_labels(&labels));
    }

    #[test]
    fn server_side_tags_narrow_to_the_region_when_the_filter_names_one() {
        let tags = marks("d").to_tags();
        let region = MarkFilter::region("d", "gb-lon");
        assert_eq!(region.server_side_tags(), ["fl-dep:d", "fl-reg:gb-lon"]);
        assert_eq!(region.server_side_tag(), "fl-reg:gb-lon");
        let deployment = MarkFilter::deployment("d");
        assert_eq!(deployment.server_side_tags(), ["fl-dep:d"]);
        assert_eq!(deployment.server_side_tag(), "fl-dep:d");
        for filter in [region, deployment] {
            assert!(
                filter.server_side_tags().iter().all(|t| tags.contains(t)),
                "a server-side filter must never drop one of our resources: {filter:?}"
            );
            assert!(tags.contains(&filter.server_side_tag()));
        }
        // Another deployment's region of the same name passes the server-side tag and is narrowed here.
        let theirs = marks("e").to_tags();
        assert!(theirs.contains(&MarkFilter::region("d", "gb-lon").server_side_tag()));
        assert!(!MarkFilter::region("d", "gb-lon").matches(&theirs));
    }

    #[test]
    fn resources_without_the_owner_tag_are_not_ours() {
        let mut tags = marks("d").to_tags();
        tags.retain(|t| t != OWNER_TAG);
        assert_eq!(Marks::from_tags(&tags), None);
        assert!(!MarkFilter::deployment("d").matches(&tags));
    }

    #[test]
    fn long_values_fit_every_provider_and_still_match() {
        let long = "www-a-very-long-subdomain-name-for-a-shop-example-co-uk";
        let tags = marks(long).to_tags();
        assert!(tags.iter().all(|t| t.len() <= MAX_TAG_LEN), "{tags:?}");
        assert!(MarkFilter::deployment(long).matches(&tags));
        assert!(!MarkFilter::deployment(long.replace("shop", "shoe")).matches(&tags));
        // DigitalOcean's tag alphabet.
        assert!(
            tags.iter()
                .all(|t| t.chars().all(|c| c.is_ascii_alphanumeric() || "-_:".contains(c)))
        );
    }
}
