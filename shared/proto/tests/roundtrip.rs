//! Property tests: every message round-trips through both encodings, and unknown extra fields (a newer
//! writer) are ignored by the reader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;

use chrono::{DateTime, TimeZone, Utc};
use flotilla_proto::*;
use proptest::prelude::*;
use uuid::Uuid;

fn roundtrip<M: Message + PartialEq + Debug>(msg: &M) {
    for encoding in [Encoding::MessagePack, Encoding::Json] {
        let bytes = encode(msg, encoding).unwrap();
        let back: M = decode(Some(M::KIND), Some(encoding.content_type()), &bytes).unwrap();
        assert_eq!(&back, msg, "{encoding:?}");
    }
}

/// Adds a field no reader knows to every JSON object in `value`.
fn add_unknown_fields(value: &mut serde_json::Value, extra: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for v in map.values_mut() {
                add_unknown_fields(v, extra);
            }
            map.insert("zz_added_in_a_later_version".into(), extra.clone());
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| add_unknown_fields(v, extra)),
        _ => {}
    }
}

fn ignores_unknown_fields<M: Message + PartialEq + Debug>(msg: &M, extra: &serde_json::Value) {
    let mut value = serde_json::to_value(msg).unwrap();
    // Only top-level and nested *structs* get the field: enums encoded as maps would change meaning.
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("zz_added_in_a_later_version".into(), extra.clone());
        if let Some(meta) = map.get_mut("meta") {
            add_unknown_fields(meta, extra);
        }
    }
    let json = serde_json::to_vec(&value).unwrap();
    let back: M = decode(Some(M::KIND), Some("application/json"), &json).unwrap();
    assert_eq!(&back, msg);
    // MessagePack as another writer would produce it from the same document.
    let msgpack = rmp_serde::to_vec_named(&value).unwrap();
    let back: M = decode(Some(M::KIND), None, &msgpack).unwrap();
    assert_eq!(&back, msg);
}

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800_000).prop_map(|ms| Utc.timestamp_millis_opt(ms).single().unwrap())
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn token() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,30}"
}

fn meta() -> impl Strategy<Value = CommandMeta> {
    (uuid(), uuid(), time(), any::<String>()).prop_map(|(id, correlation_id, issued_at, issued_by)| {
        CommandMeta {
            id: CommandId(id),
            correlation_id,
            issued_at,
            issued_by,
        }
    })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(|v| serde_json::json!(v)),
        any::<String>().prop_map(|s| serde_json::json!({ "nested": s })),
    ]
}

/// A deployment built by the real importer from a single-region template whose values vary.
fn deployment() -> impl Strategy<Value = flotilla_spec::Deployment> {
    (
        "[a-z]{1,12}",
        prop::sample::select(vec!["gb-lon", "nl-ams", "us-east", "ap-south"]),
        1u32..=5,
        0u32..=3,
        "[a-z]{3,10}-[a-z]{2,4}",
    )
        .prop_map(|(site, region, webservers, proxies, bid)| {
            let text = format!(
                r#"export CLOUDHOST="linode"
export REGION="{region}"
export TOKEN="tok"
export BUILD_IDENTIFIER="{bid}"
export WEBSITE_URL="www.{site}.uk"
export WEBSITE_NAME="{site}"
export DNS_CHOICE="cloudflare"
export DNS_USERNAME="a@b.c"
export DNS_SECURITY_KEY="k"
export NO_WEBSERVERS="{webservers}"
export MAX_WEBSERVERS="10"
export NO_REVERSE_PROXY="{proxies}"
export VPC_NAME="vpc"
export VPC_IP_RANGE="10.0.1.0/24"
export DATABASE_INSTALLATION_TYPE="MySQL"
export BUILD_ARCHIVE_CHOICE="hourly"
export S3_ACCESS_KEY="ak"
export S3_SECRET_KEY="sk"
export S3_HOST_BASE="nl-ams-1.linodeobjects.com"
export S3_LOCATION="US"
export WS_SERVER_TYPE="g6-nanode-1"
export AS_SERVER_TYPE="g6-nanode-1"
export DB_SERVER_TYPE="g6-nanode-1"
export RP_SERVER_TYPE="g6-nanode-1"
export AUTH_SERVER_TYPE="g6-nanode-1"
export MULTI_REGION="0"
export PRIMARY_REGION="1"
"#
            );
            match flotilla_spec::import_templates(&[flotilla_spec::TemplateSource::new("t.tmpl", text)]) {
                Ok(import) => import.deployment,
                Err(d) => panic!("generated template does not import:\n{d}"),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn apply_region(meta in meta(), deployment in deployment(), generation in any::<u64>(), extra in json_value()) {
        let region = deployment.regions[0].name.clone();
        let msg = ApplyRegion { meta, deployment, region, generation };
        roundtrip(&msg);
        ignores_unknown_fields(&msg, &extra);
    }

    #[test]
    fn destroy_region(meta in meta(), deployment in token(), region in token(), generation in any::<u64>(), extra in json_value()) {
        let msg = DestroyRegion { meta, deployment, region, generation };
        roundtrip(&msg);
        ignores_unknown_fields(&msg, &extra);
    }

    #[test]
    fn desired_state_and_fleet_view(
        deployment in deployment(), generation in any::<u64>(), at in time(), by in any::<String>(),
        dep in token(), region in token(), id in token(), ip in any::<Option<String>>(), cause in meta(),
        regions in proptest::collection::vec(token(), 0..4), changed in any::<bool>(), extra in json_value(),
    ) {
        let desired = DesiredDeployment { generation, deployment: deployment.clone(), updated_at: at, updated_by: by.clone() };
        roundtrip(&desired);
        ignores_unknown_fields(&desired, &extra);
        let accept = AcceptDeployment { deployment, issued_by: by.clone() };
        roundtrip(&accept);
        ignores_unknown_fields(&accept, &extra);
        let withdraw = WithdrawRegions { deployment: dep.clone(), regions, issued_by: by };
        roundtrip(&withdraw);
        ignores_unknown_fields(&withdraw, &extra);
        let accepted = Accepted { deployment: dep.clone(), generation, changed };
        roundtrip(&accepted);
        ignores_unknown_fields(&accepted, &extra);
        let record = MachineRecord {
            deployment: dep, region, resource_id: id.clone(), role: "webserver".into(), name: format!("ws-{id}"),
            size: "g6-nanode-1".into(), provider: "linode".into(), provider_id: Some(id), state: "healthy".into(),
            public_ipv4: ip.clone(), private_ipv4: ip, created_at: at, updated_at: at,
            event_id: EventMeta::derived(&cause, "m", "provisioner").id,
        };
        roundtrip(&record);
        ignores_unknown_fields(&record, &extra);
    }

    #[test]
    fn command_rejected(
        service in token(), subject in any::<String>(), command_id in any::<Option<String>>(),
        kind in any::<Option<String>>(), error in any::<String>(), deliveries in any::<u64>(), at in time(),
        extra in json_value(),
    ) {
        let msg = CommandRejected { service, subject, command_id, kind, error, deliveries, rejected_at: at };
        roundtrip(&msg);
        ignores_unknown_fields(&msg, &extra);
    }

    #[test]
    fn service_status(
        service in token(), version in "[0-9]\\.[0-9]\\.[0-9]", instance in any::<String>(), at in time(),
        db in any::<bool>(), a in any::<u64>(), r in any::<u64>(), d in any::<u64>(), extra in json_value(),
    ) {
        let msg = ServiceStatus {
            service, version, instance, started_at: at, database_ok: db,
            commands_acked: a, commands_retried: r, commands_dead_lettered: d,
        };
        roundtrip(&msg);
        ignores_unknown_fields(&msg, &extra);
        roundtrip(&ServiceStatusRequest {});
    }

    #[test]
    fn machine_changed(
        cause in meta(), dep in token(), region in token(), id in token(), role in token(),
        provider_id in any::<Option<String>>(), ip in any::<Option<String>>(), extra in json_value(),
    ) {
        let msg = MachineChanged {
            meta: EventMeta::derived(&cause, "machine", "provisioner"),
            deployment: dep, region, resource_id: id.clone(), role, name: format!("ws-{id}"), size: "g6-nanode-1".into(),
            provider: "linode".into(), provider_id,
            state: "healthy".into(), public_ipv4: ip.clone(), private_ipv4: ip,
        };
        roundtrip(&msg);
        ignores_unknown_fields(&msg, &extra);
    }

    #[test]
    fn region_applied(
        cause in meta(), dep in token(), region in token(), error in any::<Option<String>>(),
        ids in proptest::collection::vec(token(), 0..5), extra in json_value(),
    ) {
        let msg = RegionApplied {
            meta: EventMeta::derived(&cause, "region", "provisioner"),
            deployment: dep, region, outcome: "applied".into(), error,
            created: ids.clone(), adopted: ids.clone(), destroyed: ids.clone(), failed: ids,
        };
        roundtrip(&msg);
        ignores_unknown_fields(&msg, &extra);
    }

    #[test]
    fn machine_commands(
        meta in meta(), dep in token(), region in token(), id in token(), count in 1u32..100,
        role in proptest::sample::select(flotilla_spec::Role::ALL), extra in json_value(),
    ) {
        let create = CreateMachines { meta: meta.clone(), deployment: dep.clone(), region: region.clone(), role, count };
        roundtrip(&create);
        ignores_unknown_fields(&create, &extra);
        let destroy = DestroyMachine { meta: meta.clone(), deployment: dep.clone(), region: region.clone(), resource_id: id.clone() };
        roundtrip(&destroy);
        ignores_unknown_fields(&destroy, &extra);
        let replace = ReplaceMachine { meta: meta.clone(), deployment: dep.clone(), region: region.clone(), resource_id: id };
        roundtrip(&replace);
        ignores_unknown_fields(&replace, &extra);
        let reconcile = ReconcileRegion { meta, deployment: dep, region };
        roundtrip(&reconcile);
        ignores_unknown_fields(&reconcile, &extra);
    }

    #[test]
    fn dbaas_ready(
        cause in meta(), dep in token(), region in token(), id in token(), host in any::<Option<String>>(),
        port in any::<Option<u16>>(), created in any::<bool>(), extra in json_value(),
    ) {
        let msg = DbaasReady {
            meta: EventMeta::derived(&cause, "dbaas", "provisioner"),
            deployment: dep, region, provider: "linode".into(), id: id.clone(), name: id, engine: "mysql".into(),
            host, port, created,
        };
        roundtrip(&msg);
        ignores_unknown_fields(&msg, &extra);
    }

    #[test]
    fn fleet_and_plan(
        dep in token(), region in token(), ids in proptest::collection::vec(token(), 0..4),
        ip in any::<Option<String>>(), detail in any::<Option<String>>(), deployment in deployment(),
        extra in json_value(),
    ) {
        let machines: Vec<MachineView> = ids.iter().map(|id| MachineView {
            resource_id: id.clone(), role: "webserver".into(), name: format!("ws-{id}"), size: "g6-nanode-1".into(),
            state: "healthy".into(), provider_id: Some(id.clone()), public_ipv4: ip.clone(), private_ipv4: ip.clone(),
        }).collect();
        let fleet = Fleet { regions: vec![RegionView {
            deployment: dep.clone(), region: region.clone(), provider: "linode".into(), primary: true,
            status: "blocked".into(), detail, vpc_id: ip.clone(), machines,
            dbaas: Some(DbaasView { id: "1".into(), name: "db".into(), engine: "mysql".into(), status: "ready".into(),
                host: ip, port: Some(3306), created: true }),
        }] };
        roundtrip(&fleet);
        ignores_unknown_fields(&fleet, &extra);
        roundtrip(&ListMachines { deployment: Some(dep.clone()), region: None });
        let plan = PlanView { deployment: dep, region, vpc: "create".into(), dbaas: "none".into(),
            steps: ids.iter().map(|id| PlanStepView { action: "create".into(), role: "webserver".into(),
                size: "g6-nanode-1".into(), resource_id: id.clone(), reason: "missing".into() }).collect() };
        roundtrip(&plan);
        ignores_unknown_fields(&plan, &extra);
        let region = deployment.regions[0].name.clone();
        roundtrip(&ShowPlan { deployment, region });
    }

    #[test]
    fn garbage_never_panics_and_is_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..256), json in any::<bool>()) {
        let ct = if json { "application/json" } else { "application/msgpack" };
        if let Err(e) = decode::<DestroyRegion>(Some(DestroyRegion::KIND), Some(ct), &bytes) {
            let invalid = matches!(e, DecodeError::Invalid { .. });
            prop_assert!(invalid, "{}", e);
        }
    }
}

#[test]
fn decode_errors_say_what_was_wrong() {
    let missing = decode::<DestroyRegion>(Some(DestroyRegion::KIND), Some("application/json"), br#"{"meta":{"id":"0190f5c2-7a1e-7000-8000-000000000001","correlation_id":"0190f5c2-7a1e-7000-8000-000000000001","issued_at":"2026-11-24T00:00:00Z"},"deployment":"d"}"#)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing field `region`"), "{missing}");

    let wrong_type = decode::<DestroyRegion>(Some(DestroyRegion::KIND), Some("application/json"), br#"{"meta":{"id":"0190f5c2-7a1e-7000-8000-000000000001","correlation_id":"0190f5c2-7a1e-7000-8000-000000000001","issued_at":"2026-11-24T00:00:00Z"},"deployment":7,"region":"r"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        wrong_type.contains("`deployment`") && wrong_type.contains("invalid type"),
        "{wrong_type}"
    );

    let nested = decode::<DestroyRegion>(Some(DestroyRegion::KIND), Some("application/json"), br#"{"meta":{"id":"nope","correlation_id":"0190f5c2-7a1e-7000-8000-000000000001","issued_at":"2026-11-24T00:00:00Z"},"deployment":"d","region":"r"}"#)
        .unwrap_err()
        .to_string();
    assert!(nested.contains("`meta.id`"), "{nested}");

    let unknown = decode::<DestroyRegion>(Some("provisioner.destroy.v2"), None, b"")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("unknown message kind \"provisioner.destroy.v2\""),
        "{unknown}"
    );

    let none = decode::<DestroyRegion>(None, None, b"").unwrap_err().to_string();
    assert!(none.contains("no Flotilla-Kind header"), "{none}");
}

#[test]
fn json_without_a_content_type_is_recognised_and_trailing_bytes_are_refused() {
    let msg = DestroyRegion {
        meta: CommandMeta::new("t"),
        deployment: "d".into(),
        region: "r".into(),
        generation: 1,
    };
    let json = encode(&msg, Encoding::Json).unwrap();
    let back: DestroyRegion = decode(Some(DestroyRegion::KIND), None, &json).unwrap();
    assert_eq!(back, msg);
    let mut msgpack = encode(&msg, Encoding::MessagePack).unwrap();
    msgpack.extend_from_slice(&[0xc0, 0xc0]);
    let err = decode::<DestroyRegion>(Some(DestroyRegion::KIND), None, &msgpack)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 trailing bytes"), "{err}");
}
