//! The providers' real region, size and image ids the simulator accepts (a representative subset);
//! anything else is refused in the provider's own error shape.

use uuid::Uuid;

use crate::config::Provider;

/// A region (zone) id and its display name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    pub id: &'static str,
    pub label: &'static str,
    pub country: &'static str,
}

/// A machine size (Linode type, DigitalOcean size, Vultr plan, Exoscale `family.size`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size {
    pub id: &'static str,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    pub transfer_gb: u64,
    pub price_monthly: f64,
}

/// An image (Linode image, DigitalOcean slug, Vultr OS id, Exoscale template name).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Image {
    pub id: &'static str,
    pub label: &'static str,
    pub distribution: &'static str,
    /// DigitalOcean's numeric image id.
    pub number: u64,
}

const fn r(id: &'static str, label: &'static str, country: &'static str) -> Region {
    Region { id, label, country }
}

const fn s(
    id: &'static str,
    vcpus: u32,
    memory_mb: u64,
    disk_gb: u64,
    transfer_gb: u64,
    price_monthly: f64,
) -> Size {
    Size {
        id,
        vcpus,
        memory_mb,
        disk_gb,
        transfer_gb,
        price_monthly,
    }
}

const fn i(id: &'static str, label: &'static str, distribution: &'static str, number: u64) -> Image {
    Image {
        id,
        label,
        distribution,
        number,
    }
}

const LINODE_REGIONS: &[Region] = &[
    r("gb-lon", "London 2, UK", "gb"),
    r("nl-ams", "Amsterdam, NL", "nl"),
    r("de-fra-2", "Frankfurt 2, DE", "de"),
    r("fr-par", "Paris, FR", "fr"),
    r("se-sto", "Stockholm, SE", "se"),
    r("it-mil", "Milan, IT", "it"),
    r("es-mad", "Madrid, ES", "es"),
    r("eu-west", "London, UK", "gb"),
    r("eu-central", "Frankfurt, DE", "de"),
    r("us-east", "Newark, NJ", "us"),
    r("us-central", "Dallas, TX", "us"),
    r("us-west", "Fremont, CA", "us"),
    r("us-southeast", "Atlanta, GA", "us"),
    r("us-iad", "Washington, DC", "us"),
    r("us-ord", "Chicago, IL", "us"),
    r("us-sea", "Seattle, WA", "us"),
    r("us-mia", "Miami, FL", "us"),
    r("us-lax", "Los Angeles, CA", "us"),
    r("ca-central", "Toronto, CA", "ca"),
    r("ap-west", "Mumbai, IN", "in"),
    r("ap-south", "Singapore, SG", "sg"),
    r("ap-southeast", "Sydney, AU", "au"),
    r("ap-northeast", "Tokyo, JP", "jp"),
    r("au-mel", "Melbourne, AU", "au"),
    r("jp-osa", "Osaka, JP", "jp"),
    r("br-gru", "Sao Paulo, BR", "br"),
];

const LINODE_TYPES: &[Size] = &[
    s("g6-nanode-1", 1, 1024, 25, 1000, 5.0),
    s("g6-standard-1", 1, 2048, 50, 2000, 12.0),
    s("g6-standard-2", 2, 4096, 80, 4000, 24.0),
    s("g6-standard-4", 4, 8192, 160, 5000, 48.0),
    s("g6-standard-6", 6, 16384, 320, 8000, 96.0),
    s("g6-standard-8", 8, 32768, 640, 16000, 192.0),
    s("g6-dedicated-2", 2, 4096, 80, 4000, 36.0),
    s("g6-dedicated-4", 4, 8192, 160, 5000, 72.0),
    s("g6-dedicated-8", 8, 16384, 320, 6000, 144.0),
];

const LINODE_IMAGES: &[Image] = &[
    i("linode/debian13", "Debian 13", "Debian", 0),
    i("linode/debian12", "Debian 12", "Debian", 0),
    i("linode/debian11", "Debian 11", "Debian", 0),
    i("linode/ubuntu24.04", "Ubuntu 24.04 LTS", "Ubuntu", 0),
    i("linode/ubuntu22.04", "Ubuntu 22.04 LTS", "Ubuntu", 0),
    i("linode/ubuntu20.04", "Ubuntu 20.04 LTS", "Ubuntu", 0),
    i("linode/almalinux9", "AlmaLinux 9", "AlmaLinux", 0),
    i("linode/rocky9", "Rocky Linux 9", "Rocky Linux", 0),
];

const DIGITALOCEAN_REGIONS: &[Region] = &[
    r("nyc1", "New York 1", "us"),
    r("nyc2", "New York 2", "us"),
    r("nyc3", "New York 3", "us"),
    r("ams3", "Amsterdam 3", "nl"),
    r("lon1", "London 1", "gb"),
    r("fra1", "Frankfurt 1", "de"),
    r("sfo2", "San Francisco 2", "us"),
    r("sfo3", "San Francisco 3", "us"),
    r("sgp1", "Singapore 1", "sg"),
    r("tor1", "Toronto 1", "ca"),
    r("blr1", "Bangalore 1", "in"),
    r("syd1", "Sydney 1", "au"),
    r("atl1", "Atlanta 1", "us"),
];

const DIGITALOCEAN_SIZES: &[Size] = &[
    s("s-1vcpu-512mb-10gb", 1, 512, 10, 500, 4.0),
    s("s-1vcpu-1gb", 1, 1024, 25, 1000, 6.0),
    s("s-1vcpu-2gb", 1, 2048, 50, 2000, 12.0),
    s("s-2vcpu-2gb", 2, 2048, 60, 3000, 18.0),
    s("s-2vcpu-4gb", 2, 4096, 80, 4000, 24.0),
    s("s-4vcpu-8gb", 4, 8192, 160, 5000, 48.0),
    s("s-8vcpu-16gb", 8, 16384, 320, 6000, 96.0),
    s("c-2", 2, 4096, 25, 4000, 42.0),
    s("g-2vcpu-8gb", 2, 8192, 25, 4000, 63.0),
];

const DIGITALOCEAN_IMAGES: &[Image] = &[
    i("ubuntu-24-04-x64", "24.04 (LTS) x64", "Ubuntu", 160_000_001),
    i("ubuntu-22-04-x64", "22.04 (LTS) x64", "Ubuntu", 160_000_002),
    i("ubuntu-20-04-x64", "20.04 (LTS) x64", "Ubuntu", 160_000_003),
    i("debian-13-x64", "13 x64", "Debian", 160_000_004),
    i("debian-12-x64", "12 x64", "Debian", 160_000_005),
    i("debian-11-x64", "11 x64", "Debian", 160_000_006),
    i("rockylinux-9-x64", "9 x64", "Rocky Linux", 160_000_007),
    i("almalinux-9-x64", "AlmaLinux 9", "AlmaLinux", 160_000_008),
];

const VULTR_REGIONS: &[Region] = &[
    r("ams", "Amsterdam", "NL"),
    r("lhr", "London", "GB"),
    r("man", "Manchester", "GB"),
    r("fra", "Frankfurt", "DE"),
    r("cdg", "Paris", "FR"),
    r("mad", "Madrid", "ES"),
    r("sto", "Stockholm", "SE"),
    r("waw", "Warsaw", "PL"),
    r("ewr", "New Jersey", "US"),
    r("ord", "Chicago", "US"),
    r("atl", "Atlanta", "US"),
    r("dfw", "Dallas", "US"),
    r("mia", "Miami", "US"),
    r("lax", "Los Angeles", "US"),
    r("sea", "Seattle", "US"),
    r("sjc", "Silicon Valley", "US"),
    r("yto", "Toronto", "CA"),
    r("sgp", "Singapore", "SG"),
    r("nrt", "Tokyo", "JP"),
    r("syd", "Sydney", "AU"),
    r("blr", "Bangalore", "IN"),
    r("jnb", "Johannesburg", "ZA"),
    r("sao", "Sao Paulo", "BR"),
];

const VULTR_PLANS: &[Size] = &[
    s("vc2-1c-0.5gb", 1, 512, 10, 500, 2.5),
    s("vc2-1c-1gb", 1, 1024, 25, 1024, 5.0),
    s("vc2-1c-2gb", 1, 2048, 55, 2048, 10.0),
    s("vc2-2c-2gb", 2, 2048, 65, 3072, 15.0),
    s("vc2-2c-4gb", 2, 4096, 80, 3072, 20.0),
    s("vc2-4c-8gb", 4, 8192, 160, 4096, 40.0),
    s("vc2-6c-16gb", 6, 16384, 320, 5120, 80.0),
    s("vhf-1c-1gb", 1, 1024, 32, 1024, 6.0),
    s("vhf-1c-2gb", 1, 2048, 64, 2048, 12.0),
    s("vhp-1c-1gb-amd", 1, 1024, 25, 2048, 6.0),
    s("vhp-1c-2gb-amd", 1, 2048, 50, 3072, 12.0),
];

/// Vultr OS ids (as text) and names.
const VULTR_OS: &[Image] = &[
    i("2136", "Debian 12 x64 (bookworm)", "debian", 0),
    i("477", "Debian 11 x64 (bullseye)", "debian", 0),
    i("2284", "Ubuntu 24.04 LTS x64", "ubuntu", 0),
    i("1743", "Ubuntu 22.04 LTS x64", "ubuntu", 0),
    i("387", "Ubuntu 20.04 LTS x64", "ubuntu", 0),
    i("1868", "AlmaLinux 9 x64", "almalinux", 0),
];

const EXOSCALE_ZONES: &[Region] = &[
    r("ch-gva-2", "Geneva", "ch"),
    r("ch-dk-2", "Zurich", "ch"),
    r("de-fra-1", "Frankfurt", "de"),
    r("de-muc-1", "Munich", "de"),
    r("at-vie-1", "Vienna 1", "at"),
    r("at-vie-2", "Vienna 2", "at"),
    r("bg-sof-1", "Sofia", "bg"),
    r("hr-zag-1", "Zagreb", "hr"),
];

/// Exoscale instance types as `family.size`.
const EXOSCALE_TYPES: &[Size] = &[
    s("standard.micro", 1, 512, 0, 0, 0.0),
    s("standard.tiny", 1, 1024, 0, 0, 0.0),
    s("standard.small", 2, 2048, 0, 0, 0.0),
    s("standard.medium", 2, 4096, 0, 0, 0.0),
    s("standard.large", 4, 8192, 0, 0, 0.0),
    s("standard.extra-large", 4, 16384, 0, 0, 0.0),
    s("standard.huge", 8, 32768, 0, 0, 0.0),
    s("standard.mega", 12, 65536, 0, 0, 0.0),
    s("cpu.extra-large", 8, 16384, 0, 0, 0.0),
    s("memory.extra-large", 2, 16384, 0, 0, 0.0),
];

/// Exoscale public templates: name (the id is derived from it), default user, family.
const EXOSCALE_TEMPLATES: &[Image] = &[
    i("Linux Debian 13 (Trixie) 64-bit", "debian", "debian", 0),
    i("Linux Debian 12 (Bookworm) 64-bit", "debian", "debian", 0),
    i("Linux Ubuntu 24.04 LTS 64-bit", "ubuntu", "ubuntu", 0),
    i("Linux Ubuntu 22.04 LTS 64-bit", "ubuntu", "ubuntu", 0),
    i("Linux Rocky 9 64-bit", "rocky", "rocky", 0),
];

/// Regions (zones) of `provider` (none for Cloudflare).
pub(crate) fn regions(provider: Provider) -> &'static [Region] {
    match provider {
        Provider::Linode => LINODE_REGIONS,
        Provider::DigitalOcean => DIGITALOCEAN_REGIONS,
        Provider::Vultr => VULTR_REGIONS,
        Provider::Exoscale => EXOSCALE_ZONES,
        Provider::Cloudflare => &[],
    }
}

/// Sizes of `provider`.
pub(crate) fn sizes(provider: Provider) -> &'static [Size] {
    match provider {
        Provider::Linode => LINODE_TYPES,
        Provider::DigitalOcean => DIGITALOCEAN_SIZES,
        Provider::Vultr => VULTR_PLANS,
        Provider::Exoscale => EXOSCALE_TYPES,
        Provider::Cloudflare => &[],
    }
}

/// Images of `provider`.
pub(crate) fn images(provider: Provider) -> &'static [Image] {
    match provider {
        Provider::Linode => LINODE_IMAGES,
        Provider::DigitalOcean => DIGITALOCEAN_IMAGES,
        Provider::Vultr => VULTR_OS,
        Provider::Exoscale => EXOSCALE_TEMPLATES,
        Provider::Cloudflare => &[],
    }
}

/// The region `id` of `provider`.
pub(crate) fn region(provider: Provider, id: &str) -> Option<&'static Region> {
    regions(provider).iter().find(|r| r.id == id)
}

/// The size `id` of `provider`.
pub(crate) fn size(provider: Provider, id: &str) -> Option<&'static Size> {
    sizes(provider).iter().find(|s| s.id == id)
}

/// The image `id` of `provider`.
pub(crate) fn image(provider: Provider, id: &str) -> Option<&'static Image> {
    images(provider).iter().find(|i| i.id == id)
}

/// The stable UUID the simulator gives an Exoscale catalogue entry (`instance-type` or `template`).
pub(crate) fn exoscale_id(kind: &str, name: &str) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("flotilla-cloudsim/exoscale/{kind}/{name}").as_bytes(),
    )
    .to_string()
}

/// The Exoscale instance type with UUID `id`.
pub(crate) fn exoscale_type_by_id(id: &str) -> Option<&'static Size> {
    EXOSCALE_TYPES
        .iter()
        .find(|t| exoscale_id("instance-type", t.id) == id)
}

/// The Exoscale template with UUID `id`.
pub(crate) fn exoscale_template_by_id(id: &str) -> Option<&'static Image> {
    EXOSCALE_TEMPLATES
        .iter()
        .find(|t| exoscale_id("template", t.id) == id)
}
