//! Sentinel content: the committed templates and sample data equal what the code generates, the
//! templates carry every table of the schema, every KQL text passes Kusto's language service, and
//! the sample data holds the planted attacks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use callrecords::schema::{self, ColumnType};
use serde_json::Value;

use crate::cli::{OutputText, callrecords};
use crate::temp_dir;

const SENTINEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/sentinel");

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ndjson(file: &str) -> Vec<Value> {
    let path = Path::new(SENTINEL).join("sample-data").join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

// ---- generated files are committed and current ------------------------------------------------------

#[test]
fn committed_templates_are_current() {
    let out = callrecords(&["sentinel-templates", "--check", "--out", SENTINEL], None);
    assert!(out.status.success(), "stale templates: {}{}", out.stdout_text(), out.stderr_text());
}

#[test]
fn committed_sample_data_is_current() {
    let out = callrecords(&["sentinel-sample-data", "--check", "--out", SENTINEL], None);
    assert!(out.status.success(), "stale sample data: {}{}", out.stdout_text(), out.stderr_text());
}

#[test]
fn check_names_stale_and_missing_files() {
    let dir = temp_dir("sentinel-check");
    let d = dir.to_str().unwrap();
    let out = callrecords(&["sentinel-templates", "--out", d], None);
    assert!(out.status.success(), "{}", out.stderr_text());
    let out = callrecords(&["sentinel-templates", "--out", d, "--check"], None);
    assert!(out.status.success(), "freshly written files are current: {}", out.stderr_text());

    // A schema change that forgets the templates looks like this: the committed file differs.
    let dcr = dir.join("dcr.json");
    let edited = std::fs::read_to_string(&dcr).unwrap().replace("\"CallVersion\"", "\"CallVersionOld\"");
    std::fs::write(&dcr, edited).unwrap();
    std::fs::remove_file(dir.join("validate/database-schema.json")).unwrap();
    let out = callrecords(&["sentinel-templates", "--out", d, "--check"], None);
    assert!(!out.status.success());
    let err = out.stderr_text();
    assert!(err.contains("dcr.json"), "{err}");
    assert!(err.contains("database-schema.json"), "{err}");
    assert!(!err.contains("tables.json"), "tables.json is current: {err}");
}

// ---- the templates carry the schema -------------------------------------------------------------------

/// Type names of the tables API, as its reference lists them.
fn tables_api_type(k: ColumnType) -> &'static str {
    match k {
        ColumnType::String => "string",
        ColumnType::Long => "long",
        ColumnType::Real => "real",
        ColumnType::Boolean => "boolean",
        ColumnType::Datetime => "dateTime",
        ColumnType::Dynamic => "dynamic",
    }
}

#[test]
fn tables_template_has_every_table_and_column() {
    let t = read_json(&Path::new(SENTINEL).join("tables.json"));
    let resources = t["resources"].as_array().unwrap();
    assert_eq!(resources.len(), schema::TABLES.len());
    for table in schema::TABLES {
        let r = resources
            .iter()
            .find(|r| r["properties"]["schema"]["name"] == table.name)
            .unwrap_or_else(|| panic!("no table {}", table.name));
        assert_eq!(r["type"], "Microsoft.OperationalInsights/workspaces/tables");
        assert!(r["name"].as_str().unwrap().contains(&format!("'{}'", table.name)));
        let cols: Vec<(&str, &str)> = r["properties"]["schema"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
            .collect();
        if table.name == schema::SEED.name {
            continue; // checked against the documented 2020 column names below
        }
        let want: Vec<(&str, &str)> = table.columns.iter().map(|c| (c.name, tables_api_type(c.kind))).collect();
        assert_eq!(cols, want, "{}", table.name);
        assert!(cols.contains(&("TimeGenerated", "dateTime")), "{} needs TimeGenerated", table.name);
    }
}

#[test]
fn seed_table_has_the_documented_data_collector_columns() {
    // Each seed column documents the column the Data Collector API made of it: "callRecord id
    // (id_s).", "lastModifiedDateTime_t.", ... Those names, not a rule, are the expectation.
    let documented: Vec<String> = schema::SEED
        .columns
        .iter()
        .map(|c| {
            let mut words = c.description.split(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'));
            let suffixed = |w: &&str| ["_s", "_d", "_t", "_b"].iter().any(|s| w.len() > 2 && w.ends_with(s));
            words.find(suffixed).unwrap_or_else(|| panic!("{}: no column named", c.name)).to_string()
        })
        .collect();
    assert!(documented.contains(&"Type_s".to_string()) && documented.contains(&"version_d".to_string()));
    let t = read_json(&Path::new(SENTINEL).join("tables.json"));
    let seed = t["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["properties"]["schema"]["name"] == schema::SEED.name)
        .unwrap();
    let cols: Vec<&str> = seed["properties"]["schema"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut want = vec!["TimeGenerated".to_string()];
    want.extend(documented.iter().cloned());
    assert_eq!(cols, want);
    assert_eq!(seed["condition"], "[parameters('deploySeedTable')]");

    // The DCR renames the stream's fields into exactly those columns.
    let dcr = read_json(&Path::new(SENTINEL).join("dcr.json"));
    let flow = dcr_rule(&dcr)["properties"]["dataFlows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["outputStream"] == format!("Custom-{}", schema::SEED.name))
        .unwrap()
        .clone();
    let kql = flow["transformKql"].as_str().unwrap();
    for (c, classic) in schema::SEED.columns.iter().zip(&documented) {
        assert!(kql.contains(&format!("{classic} = ")) && kql.contains(&format!("['{}']", c.name)), "{classic}: {kql}");
    }
}

fn dcr_rule(dcr: &Value) -> &Value {
    dcr["resources"].as_array().unwrap().iter().find(|r| r["type"] == "Microsoft.Insights/dataCollectionRules").unwrap()
}

#[test]
fn sample_timestamps_are_utc_calendar_dates() {
    // 2026-11-16 is a Monday; its midnight is 1794787200 s after the epoch (`date -u -d @1794787200`).
    assert_eq!(callrecords_test_kit::sample_data::iso(1_794_787_200), "2026-11-16T00:00:00Z");
    assert_eq!(callrecords_test_kit::sample_data::iso(1_794_787_200 - 86_400 * 320 + 3661), "2025-12-31T01:01:01Z");
    assert_eq!(callrecords_test_kit::sample_data::iso(951_782_400), "2000-02-29T00:00:00Z");
}

#[test]
fn dcr_template_has_a_stream_and_flow_per_table_and_the_role() {
    let dcr = read_json(&Path::new(SENTINEL).join("dcr.json"));
    let rule = dcr_rule(&dcr);
    assert_eq!(rule["apiVersion"], "2023-03-11");
    let props = &rule["properties"];
    let destination = props["destinations"]["logAnalytics"][0]["name"].as_str().unwrap();
    assert_eq!(props["dataCollectionEndpointId"], "[variables('dceId')]");
    assert!(dcr["variables"]["dceId"].as_str().unwrap().contains("'Microsoft.Insights/dataCollectionEndpoints'"));
    assert!(
        dcr["resources"].as_array().unwrap().iter().any(|r| r["type"] == "Microsoft.Insights/dataCollectionEndpoints")
    );
    let declarations = props["streamDeclarations"].as_object().unwrap();
    let flows = props["dataFlows"].as_array().unwrap();
    assert_eq!(declarations.len(), schema::TABLES.len());
    assert_eq!(flows.len(), schema::TABLES.len());
    for table in schema::TABLES {
        let stream = format!("Custom-{}", table.name);
        let cols: Vec<&str> = declarations[&stream]["columns"]
            .as_array()
            .unwrap_or_else(|| panic!("no stream {stream}"))
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        assert_eq!(cols, want, "{stream}");
        let flow = flows.iter().find(|f| f["streams"][0] == stream.as_str()).unwrap();
        assert_eq!(flow["outputStream"], stream.as_str());
        assert_eq!(flow["destinations"][0], destination);
        if table.name != schema::SEED.name {
            assert_eq!(flow["transformKql"], "source", "{stream}");
        }
    }
    let role = dcr["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Microsoft.Authorization/roleAssignments")
        .unwrap();
    assert_eq!(role["properties"]["principalId"], "[parameters('servicePrincipalObjectId')]");
    assert_eq!(role["properties"]["principalType"], "ServicePrincipal");
    assert!(dcr["variables"]["roleDefinitionId"].as_str().unwrap().contains("3913510d-42f4-4e42-8a64-420c390055eb"));
    assert!(dcr["parameters"]["servicePrincipalObjectId"].is_object());
    let outputs = dcr["outputs"].as_object().unwrap();
    assert!(outputs["dataCollectionRuleImmutableId"]["value"].as_str().unwrap().contains("immutableId"));
    assert!(outputs["logsIngestionEndpoint"]["value"].as_str().unwrap().contains("logsIngestion.endpoint"));
    for table in schema::TABLES {
        assert_eq!(outputs["streams"]["value"][table.name], format!("Custom-{}", table.name));
    }
}

// ---- the KQL passes Kusto's language service ---------------------------------------------------------

static NPM: Mutex<bool> = Mutex::new(false);

/// Run the validator with `args`, installing its pinned packages first when they are missing.
fn validate(args: &[&str]) -> Output {
    let dir = PathBuf::from(SENTINEL).join("validate");
    {
        let mut installed = NPM.lock().unwrap_or_else(|e| e.into_inner());
        if !*installed && !dir.join("node_modules/@kusto/language-service-next").is_dir() {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .expect("npm runs");
            assert!(out.status.success(), "npm ci: {}", out.stderr_text());
        }
        *installed = true;
    }
    Command::new("node").arg("validate.mjs").args(args).current_dir(&dir).output().expect("node runs")
}

#[test]
fn every_kql_text_passes_the_kusto_language_service() {
    let out = validate(&[]);
    let text = out.stdout_text();
    assert!(out.status.success(), "{text}{}", out.stderr_text());
    // 3 parsers + the hunting queries + the workbook + the DCR, checked against 5 tables of ours and
    // ThreatIntelligenceIndicator.
    let hunting = std::fs::read_dir(Path::new(SENTINEL).join("hunting")).unwrap().count();
    assert!(hunting >= 12, "{hunting} hunting queries");
    let want = format!("{} files checked against 6 tables and 3 functions: 0 problems", 3 + hunting + 2);
    assert!(text.contains(&want), "{text}");
}

#[test]
fn an_unknown_column_fails_the_check_and_is_named() {
    let dir = temp_dir("sentinel-kql");
    let good = dir.join("good.kql");
    std::fs::write(&good, "TeamsCalls()\n| where CallerIsExternal\n| summarize count() by CallerTenantId\n").unwrap();
    let out = validate(&[good.to_str().unwrap()]);
    assert!(out.status.success(), "the control query must pass: {}", out.stdout_text());

    let bad = dir.join("bad.kql");
    std::fs::write(&bad, "TeamsCalls()\n| where CallerIsExternal\n| summarize count() by CallerTenantIdd\n").unwrap();
    let yaml = dir.join("bad.yaml");
    std::fs::write(
        &yaml,
        "id: 00000000-0000-4000-8000-000000000000\nname: n\ndescription: d\nrequiredDataConnectors: []\n\
         tactics: [Impact]\nrelevantTechniques: [T1496]\nentityMappings:\n  - entityType: Account\n    fieldMappings:\n\
         \x20     - identifier: AadUserId\n        columnName: CallerId\n      - identifier: AadTenantId\n\
         \x20       columnName: TenantOfCaller\nquery: |\n  TeamsCallLeg_CL\n  | where NoSuchColumn > 1\n",
    )
    .unwrap();
    let out = validate(&[bad.to_str().unwrap(), yaml.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = out.stdout_text();
    assert!(text.contains("bad.kql:3:") && text.contains("'CallerTenantIdd'"), "{text}");
    // Line 16 of the YAML file is the query's second line.
    assert!(text.contains("bad.yaml:16:") && text.contains("'NoSuchColumn'"), "{text}");
    // An entity mapped to a column the query does not return is named; CallerId is returned.
    assert!(text.contains("maps TenantOfCaller, which the query does not return"), "{text}");
    assert!(!text.contains("maps CallerId"), "{text}");
    assert!(text.contains(": 3 problems"), "{text}");
}

// ---- the sample data holds the planted attacks ---------------------------------------------------------

/// The call ids the sample-data README lists under a hunting query.
fn documented_calls(query: &str) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(SENTINEL).join("sample-data/README.md")).unwrap();
    let section =
        readme.split(&format!("### `hunting/{query}`")).nth(1).unwrap_or_else(|| panic!("no section {query}"));
    let section = section.split("### ").next().unwrap();
    section.lines().filter_map(|l| l.trim().strip_prefix("- `")).map(|l| l.trim_end_matches('`').to_string()).collect()
}

const HOME: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";

/// Legs of the newest version of each call, computed from the rows (not by the generator).
fn newest_legs() -> Vec<Value> {
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    for c in ndjson("TeamsCall_CL.ndjson") {
        let v = newest.entry(c["CallId"].as_str().unwrap().to_string()).or_insert(i64::MIN);
        *v = (*v).max(c["CallVersion"].as_i64().unwrap());
    }
    ndjson("TeamsCallLeg_CL.ndjson")
        .into_iter()
        .filter(|l| newest[l["CallId"].as_str().unwrap()] == l["CallVersion"].as_i64().unwrap())
        .collect()
}

fn minute(ts: &Value) -> i64 {
    // "2026-11-16T09:02:00Z": minutes since the start of the month are enough within the sample.
    let s = ts.as_str().unwrap();
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    (n(8, 10) * 24 + n(11, 13)) * 60 + n(14, 16)
}

#[test]
fn sample_data_holds_the_planted_vishing_burst() {
    // An external-tenant caller reaching >= 5 internal users within one clock hour.
    let mut by_caller: BTreeMap<(String, i64), (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for l in newest_legs() {
        let (ct, et) = (l["CallerTenantId"].as_str().unwrap_or(""), l["CalleeTenantId"].as_str().unwrap_or(""));
        if !ct.is_empty() && ct != HOME && et == HOME {
            let e = by_caller
                .entry((l["CallerId"].as_str().unwrap().into(), minute(&l["StartDateTime"]) / 60))
                .or_default();
            e.0.insert(l["CalleeId"].as_str().unwrap().into());
            e.1.insert(l["CallId"].as_str().unwrap().into());
        }
    }
    let hits: Vec<_> = by_caller.values().filter(|(targets, _)| targets.len() >= 5).collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].1, documented_calls("external-tenant-reaching-many-users.yaml"));
    // The first vishing call arrived twice; the newest version is the one with media.
    let versions: Vec<i64> = ndjson("TeamsCall_CL.ndjson")
        .iter()
        .filter(|c| hits[0].1.contains(c["CallId"].as_str().unwrap()))
        .map(|c| c["CallVersion"].as_i64().unwrap())
        .collect();
    assert_eq!(versions.iter().filter(|v| **v == 1).count(), 1);
    assert_eq!(versions.iter().filter(|v| **v == 2).count(), 6);
}

#[test]
fn sample_data_holds_the_planted_failed_setup_burst_and_ti_hit() {
    let mut failures: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
    for l in newest_legs() {
        if l["FailureStage"] == "callSetup" {
            let key = (l["CallerId"].as_str().unwrap().into(), minute(&l["StartDateTime"]) / 10);
            failures.entry(key).or_default().insert(l["CallId"].as_str().unwrap().into());
        }
    }
    let bursts: Vec<_> = failures.values().filter(|calls| calls.len() >= 5).collect();
    assert_eq!(bursts.len(), 1, "{failures:?}");
    assert_eq!(bursts[0], &documented_calls("failed-call-setup-burst.yaml"));

    let active: BTreeSet<String> = ndjson("ThreatIntelligenceIndicator.ndjson")
        .iter()
        .filter(|t| t["Active"] == true)
        .map(|t| t["NetworkIP"].as_str().unwrap().to_string())
        .collect();
    let ti_calls: BTreeSet<String> = newest_legs()
        .iter()
        .filter(|l| l["CallerReflexiveIpAddress"].as_str().is_some_and(|ip| active.contains(ip)))
        .map(|l| l["CallId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ti_calls, documented_calls("caller-ip-in-threat-intelligence.yaml"));
    assert_eq!(ti_calls.len(), 1);
}

// ---- Azure's storage rules the parsers must live with -----------------------------------------------

/// A GUID as the Data Collector API recognises one (8-4-4-4-12 hex digits), checked here by hand.
fn guid_shaped(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12]) && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[test]
fn the_legacy_parser_reads_the_g_column_of_every_guid_shaped_seed_field() {
    // The Data Collector API files a GUID-shaped string under `<field>_g`, not `_s`: every seed
    // field whose sample values are GUIDs must be read from there too.
    let parser = std::fs::read_to_string(Path::new(SENTINEL).join("parsers/TeamsCallsLegacy.kql")).unwrap();
    let mut guid_fields = BTreeSet::new();
    for row in ndjson("TEAMSGraphCallRecords_CL.ndjson") {
        for (field, value) in row.as_object().unwrap() {
            if value.as_str().is_some_and(guid_shaped) {
                guid_fields.insert(field.clone());
            }
        }
    }
    assert!(guid_fields.contains("id") && guid_fields.contains("organizer_user_tenantId"), "{guid_fields:?}");
    for field in &guid_fields {
        assert!(parser.contains(&format!("column_ifexists(\"{field}_g\"")), "TeamsCallsLegacy ignores {field}_g");
    }
}

#[test]
fn hunting_queries_time_rows_by_the_call_not_by_their_arrival() {
    // Logs Ingestion replaces a TimeGenerated more than 2 days old with the arrival time, so a
    // backfilled call's stored TimeGenerated is the day it was shipped. The parser gives each leg
    // its own start as TimeGenerated, and no hunting query filters a typed table's stored one.
    let parser = std::fs::read_to_string(Path::new(SENTINEL).join("parsers/TeamsCalls.kql")).unwrap();
    let code: Vec<&str> = parser.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
    let retimed = code.iter().position(|l| l.contains("TimeGenerated = coalesce(LegStart, TimeGenerated)"));
    let projected = code.iter().position(|l| l.starts_with("| project TimeGenerated,"));
    assert!(
        matches!((retimed, projected), (Some(r), Some(p)) if r < p),
        "TeamsCalls projects the stored TimeGenerated"
    );
    for entry in std::fs::read_dir(Path::new(SENTINEL).join("hunting")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let query = text.split_once("\nquery: |\n").map(|(_, q)| q).unwrap_or_default();
        for table in schema::TABLES.iter().filter(|t| t.name != schema::SEED.name) {
            assert!(!query.contains(table.name), "{} reads {} directly", path.display(), table.name);
        }
    }
}
