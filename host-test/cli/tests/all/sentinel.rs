//! Sentinel content: the committed templates and sample data equal what the code generates, the
//! templates carry every table of the schema, every KQL text passes Kusto's language service and
//! every analytic rule the fields Sentinel's CI requires, the solution package lists its content
//! as Azure-Sentinel's packaging tool reads it, and the sample data holds the planted attacks.

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
fn azure_sentinel_table_schemas_have_the_columns_of_the_tables_template() {
    // Azure-Sentinel's KQL validation reads `{"Name", "Properties": [{"Name", "Type"}]}` with KQL's
    // type names; the columns are those tables.json creates, in its order (its types renamed).
    fn kql(api: &str) -> &str {
        match api {
            "dateTime" => "datetime",
            "boolean" => "bool",
            other => other,
        }
    }
    let t = read_json(&Path::new(SENTINEL).join("tables.json"));
    let resources = t["resources"].as_array().unwrap();
    let files = content_files("validate/CustomTables", ".json");
    assert_eq!(files.len(), resources.len(), "{files:?}");
    for r in resources {
        let name = r["properties"]["schema"]["name"].as_str().unwrap();
        let doc = read_json(&Path::new(SENTINEL).join(format!("validate/CustomTables/{name}.json")));
        assert_eq!(doc["Name"], name);
        let want: Vec<(String, String)> = r["properties"]["schema"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), kql(c["type"].as_str().unwrap()).to_string()))
            .collect();
        let got: Vec<(String, String)> = doc["Properties"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["Name"].as_str().unwrap().to_string(), p["Type"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(got, want, "{name}");
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

/// The validator's folder, with its pinned packages installed (`npm ci` when they are missing).
fn validator_dir() -> PathBuf {
    let dir = PathBuf::from(SENTINEL).join("validate");
    let mut installed = NPM.lock().unwrap_or_else(|e| e.into_inner());
    if !*installed && !dir.join("node_modules/@kusto/language-service-next").is_dir() {
        let out =
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir).output().expect("npm runs");
        assert!(out.status.success(), "npm ci: {}", out.stderr_text());
    }
    *installed = true;
    dir
}

/// Run the validator with `args`.
fn validate(args: &[&str]) -> Output {
    Command::new("node").arg("validate.mjs").args(args).current_dir(validator_dir()).output().expect("node runs")
}

/// YAML files as JSON, read by the validator's own YAML package (the workspace has no YAML crate).
fn yaml_files(paths: &[PathBuf]) -> Vec<Value> {
    let script = "import YAML from 'yaml'; import { readFileSync } from 'node:fs';\n\
                  console.log(JSON.stringify(process.argv.slice(1).map((f) => YAML.parse(readFileSync(f, 'utf8')))));";
    let out = Command::new("node")
        .args(["--input-type=module", "-e", script, "--"])
        .args(paths)
        .current_dir(validator_dir())
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{}", out.stderr_text());
    serde_json::from_str(&out.stdout_text()).expect("JSON from node")
}

/// The files of a content folder with the given ending, sorted.
fn content_files(folder: &str, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(SENTINEL).join(folder))
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(ext))
        .collect();
    files.sort();
    files
}

#[test]
fn every_kql_text_passes_the_kusto_language_service() {
    let out = validate(&[]);
    let text = out.stdout_text();
    assert!(out.status.success(), "{text}{}", out.stderr_text());
    // The parsers, hunting queries, analytic rules, the workbook, the data connector page and the
    // DCR, checked against the tables of our schema and ThreatIntelligenceIndicator, the parsers as
    // functions and the watchlist.
    let parsers = content_files("Parsers", ".yaml").len();
    let hunting = content_files("Hunting Queries", ".yaml").len();
    let rules = content_files("Analytic Rules", ".yaml").len();
    assert!(parsers >= 4 && hunting >= 17 && rules >= 5, "{parsers} parsers, {hunting} hunting queries, {rules} rules");
    let connectors = content_files("Data Connectors", ".json").len();
    let want = format!(
        "{} files checked against {} tables, {parsers} functions and 1 watchlists: 0 problems",
        parsers + hunting + rules + 1 + connectors + 1,
        schema::TABLES.len() + 1
    );
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

#[test]
fn a_broken_analytic_rule_is_named_with_what_breaks_it() {
    let dir = temp_dir("sentinel-rule");
    let rule = |severity: &str, frequency: &str, period: &str, extra: &str| {
        format!(
            "id: 7b1f3c2a-0d4e-4f5a-9b6c-7d8e9f0a1b2c\nkind: Scheduled\nname: n\ndescription: d\nseverity: {severity}\n\
             requiredDataConnectors:\n  - connectorId: TeamsSentinelCallRecords\n    dataTypes:\n      - TeamsPstnCall_CL\n\
             queryFrequency: {frequency}\nqueryPeriod: {period}\ntriggerOperator: gt\ntriggerThreshold: 0\n\
             tactics:\n  - Impact\nrelevantTechniques:\n  - T1496\n{extra}\
             query: |\n  TeamsPstnCalls()\n  | summarize Charge = sum(TotalCharge) by UserId, AccountName\n\
             entityMappings:\n  - entityType: Account\n    fieldMappings:\n      - identifier: AadUserId\n        columnName: UserId\n"
        )
    };
    let good = dir.join("good.yaml");
    std::fs::write(&good, rule("Medium", "1h", "14d", "customDetails:\n  Charge: Charge\n")).unwrap();
    let out = validate(&[good.to_str().unwrap()]);
    assert!(out.status.success(), "the control rule must pass: {}", out.stdout_text());

    // A period shorter than the frequency, an unknown severity, a 14-day period run every 30
    // minutes, a technique whose tactic is missing, a custom detail of a column the query lacks.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, rule("Critical", "2h", "1h", "customDetails:\n  Country: UsageCountryCode\n")).unwrap();
    let often = dir.join("often.yaml");
    let text = rule("High", "30m", "14d", "").replace("  - T1496\n", "  - T1496\n  - T1566.004\n");
    std::fs::write(&often, text).unwrap();
    let out = validate(&[bad.to_str().unwrap(), often.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = out.stdout_text();
    assert!(text.contains("bad.yaml:5:11: error: severity Critical is not one of"), "{text}");
    assert!(text.contains("bad.yaml:11:14: error: queryPeriod 1h is shorter than queryFrequency 2h"), "{text}");
    assert!(text.contains("bad.yaml:19:12: error: custom detail Country names UsageCountryCode"), "{text}");
    assert!(
        text.contains("often.yaml:10:17: error: queryPeriod 14d is 2d or more, so queryFrequency must be 1h or more"),
        "{text}"
    );
    assert!(
        text.contains("often.yaml:18:5: error: technique T1566.004 needs one of its tactics (InitialAccess)"),
        "{text}"
    );
    assert!(text.contains(": 5 problems"), "{text}");
}

// ---- the sample data holds the planted attacks ---------------------------------------------------------

/// The call and row ids the sample-data README lists under a hunting query or analytic rule
/// (`Hunting Queries/....yaml`, `Analytic Rules/....yaml`).
fn documented(content: &str) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(SENTINEL).join("sample-data/README.md")).unwrap();
    let section = readme.split(&format!("### `{content}`")).nth(1).unwrap_or_else(|| panic!("no section {content}"));
    let section = section.split("### ").next().unwrap();
    section.lines().filter_map(|l| l.trim().strip_prefix("- `")).map(|l| l.trim_end_matches('`').to_string()).collect()
}

const HOME: &str = "2a5cb1a8-64a3-4fbe-9b1f-7c3c2f1b0e11";
const VISHING: &str = "d4c3b2a1-0e9f-4a8b-9c7d-6e5f4a3b2c1d";

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

/// The windows the queries count in: one opens at each event of a key (at `anchor(t)`: the event
/// itself, or its minute) and holds the key's events of the next `width` seconds. Per key, the
/// window that `keep` accepts with the highest `score` (the earliest of equals), as the events'
/// indices.
fn busiest_windows<K: Ord + Clone>(
    events: &[(K, i64)],
    width: i64,
    anchor: impl Fn(i64) -> i64,
    keep: impl Fn(&[usize]) -> bool,
    score: impl Fn(&[usize]) -> usize,
) -> BTreeMap<K, Vec<usize>> {
    let mut best: BTreeMap<K, (usize, i64, Vec<usize>)> = BTreeMap::new();
    let starts: BTreeSet<(K, i64)> = events.iter().map(|(k, t)| (k.clone(), anchor(*t))).collect();
    for (key, start) in starts {
        let members: Vec<usize> = (0..events.len())
            .filter(|i| events[*i].0 == key && (start..start + width).contains(&events[*i].1))
            .collect();
        if !keep(&members) {
            continue;
        }
        let sc = score(&members);
        match best.get(&key) {
            Some((b, _, _)) if *b >= sc => {}
            _ => {
                best.insert(key, (sc, start, members));
            }
        }
    }
    best.into_iter().map(|(k, (_, _, m))| (k, m)).collect()
}

#[test]
fn sample_data_holds_the_planted_vishing_burst() {
    // An external-tenant caller reaching >= 5 internal users within an hour (a window opens at
    // each of its legs).
    let legs: Vec<Value> = newest_legs()
        .into_iter()
        .filter(|l| {
            let (ct, et) = (l["CallerTenantId"].as_str().unwrap_or(""), l["CalleeTenantId"].as_str().unwrap_or(""));
            !ct.is_empty() && ct != HOME && et == HOME
        })
        .collect();
    let events: Vec<(String, i64)> = legs
        .iter()
        .map(|l| (l["CallerId"].as_str().unwrap().to_string(), epoch(&l["StartDateTime"]).unwrap()))
        .collect();
    let targets = |m: &[usize]| m.iter().map(|i| legs[*i]["CalleeId"].as_str().unwrap()).collect::<BTreeSet<_>>().len();
    let windows = busiest_windows(&events, 3600, |t| t, |m| targets(m) >= 5, targets);
    let hits: Vec<(usize, BTreeSet<String>)> = windows
        .values()
        .map(|m| (targets(m), m.iter().map(|i| legs[*i]["CallId"].as_str().unwrap().to_string()).collect()))
        .collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].1, documented("Hunting Queries/external-tenant-reaching-many-users.yaml"));
    // The analytic rule is the same logic.
    assert_eq!(hits[0].1, documented("Analytic Rules/external-tenant-helpdesk-vishing.yaml"));
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
    // >= 5 call-setup failures by one caller within 10 minutes (a window opens at each failure).
    let failed: Vec<Value> = newest_legs().into_iter().filter(|l| l["FailureStage"] == "callSetup").collect();
    let events: Vec<(String, i64)> = failed
        .iter()
        .map(|l| (l["CallerId"].as_str().unwrap().to_string(), epoch(&l["StartDateTime"]).unwrap()))
        .collect();
    let bursts = busiest_windows(&events, 600, |t| t, |m| m.len() >= 5, <[usize]>::len);
    assert_eq!(bursts.len(), 1, "{bursts:?}");
    let calls: BTreeSet<String> =
        bursts.values().next().unwrap().iter().map(|i| failed[*i]["CallId"].as_str().unwrap().to_string()).collect();
    assert_eq!(calls, documented("Hunting Queries/failed-call-setup-burst.yaml"));

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
    assert_eq!(ti_calls, documented("Hunting Queries/caller-ip-in-threat-intelligence.yaml"));
    assert_eq!(ti_calls.len(), 1);
}

// ---- the PSTN and Direct Routing rows hold the planted toll fraud ---------------------------------------

const ATTACK_DAY: i64 = 1_794_787_200; // 2026-11-16T00:00:00Z, a Monday
const DAY: i64 = 86_400;

fn epoch(v: &Value) -> Option<i64> {
    callrecords::values::parse_timestamp(v.as_str()?).map(|t| t.secs)
}

/// A PSTN or Direct Routing log row as the content reads it through `TeamsPstnCalls`, worked out
/// here from the NDJSON rows by hand: one row per `Id` (the first written), the other party's
/// number, international from Graph's DestinationContext or (Direct Routing) a number outside +1.
#[derive(Debug)]
struct PstnRow {
    id: String,
    direct_routing: bool,
    user: String,
    start: i64,
    secs: i64,
    outbound: bool,
    dialed: String,
    e164: String,
    international: bool,
    charge: Option<f64>,
    trunk: String,
    success: Option<bool>,
}

fn pstn_rows() -> Vec<PstnRow> {
    let mut seen = BTreeSet::new();
    let mut rows = vec![];
    for (file, direct_routing) in [("TeamsPstnCall_CL.ndjson", false), ("TeamsDirectRoutingCall_CL.ndjson", true)] {
        for r in ndjson(file) {
            let id = r["Id"].as_str().unwrap().to_string();
            if !seen.insert(id.clone()) {
                continue;
            }
            let outbound = r["Direction"] == "outbound";
            let number = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            let dialed = if r["Direction"] == "inbound" { number("CallerNumber") } else { number("CalleeNumber") };
            let digits: String = dialed.chars().filter(char::is_ascii_digit).collect();
            let e164 = if dialed.starts_with('+') {
                format!("+{digits}")
            } else if dialed.starts_with("00") {
                format!("+{}", &digits[2..])
            } else {
                String::new()
            };
            let international = match r["DestinationContext"].as_str() {
                Some(c) => c == "International",
                None => !e164.is_empty() && !e164.starts_with("+1"),
            };
            let charge = (!direct_routing)
                .then(|| r["Charge"].as_f64().unwrap_or(0.0) + r["ConnectionCharge"].as_f64().unwrap_or(0.0));
            rows.push(PstnRow {
                id,
                direct_routing,
                user: r["UserId"].as_str().unwrap_or_default().to_string(),
                start: epoch(&r["StartDateTime"]).expect("every row has a start"),
                secs: r["DurationSeconds"].as_i64().unwrap_or(0),
                outbound,
                dialed,
                e164,
                international,
                charge,
                trunk: r["TrunkFullyQualifiedDomainName"].as_str().unwrap_or_default().to_string(),
                success: r["SuccessfulCall"].as_bool(),
            });
        }
    }
    rows
}

fn ids<'a>(rows: impl IntoIterator<Item = &'a PstnRow>) -> BTreeSet<String> {
    rows.into_iter().map(|r| r.id.clone()).collect()
}

/// The watchlist's prefixes, from its CSV.
fn high_risk_prefixes() -> Vec<String> {
    let csv = std::fs::read_to_string(Path::new(SENTINEL).join("Watchlists/TeamsHighRiskPrefixes.csv")).unwrap();
    csv.lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect()
}

#[test]
fn sample_data_holds_the_planted_premium_and_high_risk_calls() {
    // Over the whole week: outbound calls whose E.164 number starts with a watchlist prefix.
    let prefixes = high_risk_prefixes();
    let rows = pstn_rows();
    let hits: Vec<&PstnRow> = rows
        .iter()
        .filter(|r| r.outbound && !r.e164.is_empty() && prefixes.iter().any(|p| r.e164.starts_with(p.as_str())))
        .collect();
    assert_eq!(hits.len(), 5, "{hits:?}");
    assert!(hits.iter().all(|r| r.start >= ATTACK_DAY), "a baseline row hits: {hits:?}");
    assert_eq!(ids(hits.iter().copied()), documented("Hunting Queries/pstn-premium-or-high-risk-destinations.yaml"));
    assert_eq!(ids(hits.iter().copied()), documented("Analytic Rules/pstn-toll-fraud-high-risk-destination.yaml"));
    // Both logs: Direct Routing's +1 900 call and the Calling Plans' IRSF and wangiri callback.
    assert_eq!(hits.iter().filter(|r| r.direct_routing).count(), 1);
    // The IRSF row written twice is one row for the content.
    let written = ndjson("TeamsPstnCall_CL.ndjson").len();
    assert_eq!(rows.iter().filter(|r| !r.direct_routing).count(), written - 1);
}

#[test]
fn sample_data_holds_the_planted_off_hours_international_calls() {
    // Outbound, international, starting before 07:00, from 19:00 or at the weekend (UTC); the week
    // starts on Monday 2026-11-09.
    let rows = pstn_rows();
    let off_hours = |t: i64| {
        let hour = t.rem_euclid(DAY) / 3600;
        let weekday = (t - (ATTACK_DAY - 7 * DAY)).div_euclid(DAY).rem_euclid(7); // 0 = Monday
        !(7..19).contains(&hour) || weekday >= 5
    };
    let hits: Vec<&PstnRow> = rows.iter().filter(|r| r.outbound && r.international && off_hours(r.start)).collect();
    assert_eq!(hits.len(), 4, "{hits:?}");
    assert!(hits.iter().all(|r| r.start >= ATTACK_DAY), "a baseline row hits: {hits:?}");
    assert_eq!(
        ids(hits.iter().copied()),
        documented("Hunting Queries/pstn-international-calls-outside-working-hours.yaml")
    );
    // The emergency call at 19:20 is no international call: 911 is no E.164 number.
    assert!(rows.iter().any(|r| r.dialed == "911" && off_hours(r.start) && !r.international));
}

#[test]
fn sample_data_holds_the_planted_charge_spikes() {
    // Per user, the attack day's charges against the 13 days before: at least 50 and at least five
    // times the daily average. On no baseline day does anyone reach 50.
    let rows = pstn_rows();
    let mut day: BTreeMap<&str, (f64, BTreeSet<String>)> = BTreeMap::new();
    let mut before: BTreeMap<&str, f64> = BTreeMap::new();
    let mut per_day: BTreeMap<(&str, i64), f64> = BTreeMap::new();
    for r in rows.iter().filter(|r| !r.user.is_empty()) {
        let Some(charge) = r.charge else { continue };
        *per_day.entry((&r.user, r.start.div_euclid(DAY))).or_default() += charge;
        if r.start >= ATTACK_DAY {
            let e = day.entry(&r.user).or_default();
            e.0 += charge;
            e.1.insert(r.id.clone());
        } else if r.start >= ATTACK_DAY - 13 * DAY {
            *before.entry(&r.user).or_default() += charge;
        }
    }
    let spikes: BTreeMap<&str, (f64, BTreeSet<String>)> = day
        .into_iter()
        .filter(|(user, (charge, _))| {
            *charge >= 50.0 && *charge >= 5.0 * before.get(user).copied().unwrap_or(0.0) / 13.0
        })
        .collect();
    assert_eq!(spikes.len(), 2, "{spikes:?}");
    let charges: Vec<f64> = spikes.values().map(|(c, _)| (c * 100.0).round() / 100.0).collect();
    assert!(charges.contains(&159.3) && charges.contains(&187.5), "{charges:?}");
    let hit_ids: BTreeSet<String> = spikes.values().flat_map(|(_, ids)| ids.iter().cloned()).collect();
    assert_eq!(hit_ids, documented("Hunting Queries/pstn-charge-above-user-baseline.yaml"));
    assert_eq!(hit_ids, documented("Analytic Rules/pstn-toll-fraud-charge-spike.yaml"));
    let quiet = per_day.iter().filter(|((_, d), _)| *d < ATTACK_DAY / DAY).all(|(_, c)| *c < 50.0);
    assert!(quiet, "a baseline day reaches 50: {per_day:?}");
}

#[test]
fn sample_data_holds_the_planted_short_call_burst_storm_and_emergency_call() {
    let rows = pstn_rows();
    // >= 5 outbound calls of <= 30 s to >= 3 numbers by one user within 10 minutes (a window opens
    // at each such call).
    let short: Vec<&PstnRow> = rows.iter().filter(|r| r.outbound && r.secs <= 30 && !r.user.is_empty()).collect();
    let events: Vec<(String, i64)> = short.iter().map(|r| (r.user.clone(), r.start)).collect();
    let numbers = |m: &[usize]| m.iter().map(|i| &short[*i].dialed).collect::<BTreeSet<_>>().len();
    let bursts = busiest_windows(&events, 600, |t| t, |m| m.len() >= 5 && numbers(m) >= 3, <[usize]>::len);
    assert_eq!(bursts.len(), 1, "{bursts:?}");
    let burst = bursts.values().next().unwrap().iter().map(|i| short[*i]);
    assert_eq!(ids(burst), documented("Hunting Queries/pstn-short-outbound-call-burst.yaml"));

    // >= 10 failed Direct Routing attempts on one trunk within 15 minutes, half its attempts there
    // (a window opens at each minute with an attempt).
    let attempts: Vec<&PstnRow> = rows.iter().filter(|r| r.direct_routing && !r.trunk.is_empty()).collect();
    let events: Vec<(String, i64)> = attempts.iter().map(|r| (r.trunk.clone(), r.start)).collect();
    let failures = |m: &[usize]| m.iter().filter(|i| attempts[**i].success == Some(false)).count();
    let storms = busiest_windows(
        &events,
        900,
        |t| t.div_euclid(60) * 60,
        |m| failures(m) >= 10 && failures(m) * 2 >= m.len(),
        failures,
    );
    assert_eq!(storms.len(), 1, "{storms:?}");
    let (trunk, storm) = storms.iter().next().unwrap();
    assert_eq!(trunk, "sbc2.contoso.com");
    let failed = storm.iter().map(|i| attempts[*i]).filter(|r| r.success == Some(false));
    assert_eq!(ids(failed), documented("Hunting Queries/direct-routing-failure-storm.yaml"));
    // The baseline's busy signals are failures too, one a day.
    assert!(rows.iter().any(|r| r.start < ATTACK_DAY && r.success == Some(false)));

    // Outbound to a 3-digit emergency code, alone or after a country code (3 to 6 digits).
    let codes = ["911", "112", "999", "000", "110", "119", "100", "101", "102", "108", "117", "118"];
    let emergency: Vec<&PstnRow> = rows
        .iter()
        .filter(|r| {
            let digits: String = r.dialed.chars().filter(char::is_ascii_digit).collect();
            r.outbound && (3..=6).contains(&digits.len()) && codes.contains(&&digits[digits.len() - 3..])
        })
        .collect();
    assert_eq!(emergency.len(), 1, "{emergency:?}");
    assert_eq!(ids(emergency.iter().copied()), documented("Analytic Rules/pstn-emergency-call.yaml"));
}

#[test]
fn sample_data_holds_the_planted_vishing_then_pstn_call() {
    // A leg with a user of a tenant first seen on the attack day (set up, not failed), then an
    // outbound PSTN call by the internal user within two hours after the leg ended.
    let legs = newest_legs();
    let side = |l: &Value, who: &str| -> (String, String) {
        let s = |k: &str| l[format!("{who}{k}")].as_str().unwrap_or_default().to_string();
        (s("TenantId"), s("Id"))
    };
    let mut known = BTreeSet::new();
    let mut contacts = vec![];
    for l in &legs {
        let ((ct, caller), (et, callee)) = (side(l, "Caller"), side(l, "Callee"));
        let external = |t: &str| !t.is_empty() && t != HOME;
        let (tenant, user) = match (external(&ct), external(&et)) {
            (true, false) if et == HOME => (ct, callee),
            (false, true) if ct == HOME => (et, caller),
            _ => continue,
        };
        let start = epoch(&l["StartDateTime"]).unwrap();
        if start < ATTACK_DAY {
            known.insert(tenant);
        } else if l["FailureStage"] != "callSetup" {
            let end = epoch(&l["EndDateTime"]).unwrap_or(start);
            contacts.push((tenant, user, start, end, l["CallId"].as_str().unwrap().to_string()));
        }
    }
    let rows = pstn_rows();
    let followed = |only_new: bool| {
        let mut found = (BTreeSet::new(), BTreeSet::new());
        for (tenant, user, start, end, call) in contacts.iter().filter(|c| !only_new || !known.contains(&c.0)) {
            let after = |r: &&PstnRow| r.outbound && &r.user == user && r.start >= *start && r.start <= end + 2 * 3600;
            for r in rows.iter().filter(after) {
                found.0.insert(format!("{tenant}/{call}"));
                found.1.insert(r.id.clone());
            }
        }
        found
    };
    let (calls, pstn) = followed(true);
    assert_eq!((calls.len(), pstn.len()), (1, 1), "{calls:?} {pstn:?}");
    assert!(calls.iter().all(|c| c.starts_with(VISHING)), "{calls:?}");
    let calls: BTreeSet<String> = calls.iter().map(|c| c.split('/').nth(1).unwrap().to_string()).collect();
    let both: BTreeSet<String> = calls.union(&pstn).cloned().collect();
    assert_eq!(both, documented("Hunting Queries/external-tenant-contact-then-pstn-call.yaml"));
    // Farah Haddad's daily call with the partner is followed by her 10:40 call every day: the
    // first-contact rule (only_new_tenants, on by default) is what keeps the baseline out.
    let (_, every_tenant) = followed(false);
    assert!(every_tenant.len() > 1 && every_tenant.is_superset(&pstn), "{every_tenant:?}");
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
    let parser = function_query("TeamsCallsLegacy");
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

/// A parser's `FunctionQuery`.
fn function_query(name: &str) -> String {
    let doc = &yaml_files(&[Path::new(SENTINEL).join(format!("Parsers/{name}.yaml"))])[0];
    assert_eq!(doc["FunctionName"], name);
    doc["FunctionQuery"].as_str().unwrap().to_string()
}

#[test]
fn queries_time_rows_by_the_call_not_by_their_arrival() {
    // Logs Ingestion replaces a TimeGenerated more than 2 days old with the arrival time, so a
    // backfilled call's stored TimeGenerated is the day it was shipped. The parsers give each leg,
    // and each PSTN row, its own start as TimeGenerated, and no hunting query reads a typed table.
    let parser = function_query("TeamsCalls");
    let code: Vec<&str> = parser.lines().map(str::trim_start).filter(|l| !l.starts_with("//")).collect();
    let retimed = code.iter().position(|l| l.contains("TimeGenerated = coalesce(LegStart, TimeGenerated)"));
    let projected = code.iter().position(|l| l.starts_with("| project TimeGenerated,"));
    assert!(
        matches!((retimed, projected), (Some(r), Some(p)) if r < p),
        "TeamsCalls projects the stored TimeGenerated"
    );
    let pstn = function_query("TeamsPstnCalls");
    for (table, retime) in [
        ("TeamsPstnCall_CL", "project TimeGenerated = coalesce(StartDateTime, TimeGenerated)"),
        ("TeamsDirectRoutingCall_CL", "project TimeGenerated = coalesce(StartDateTime, InviteDateTime, TimeGenerated)"),
    ] {
        let from = pstn.find(&format!("= {table}")).unwrap_or_else(|| panic!("TeamsPstnCalls reads no {table}"));
        assert!(pstn[from..].split(';').next().unwrap().contains(retime), "TeamsPstnCalls keeps {table}'s stored time");
    }
    assert!(pstn.contains("\n| project TimeGenerated, IngestedAt,"), "TeamsPstnCalls ends with another projection");

    let typed: Vec<&str> = schema::TABLES.iter().filter(|t| t.name != schema::SEED.name).map(|t| t.name).collect();
    assert!(typed.contains(&"TeamsPstnCall_CL") && typed.contains(&"TeamsDirectRoutingCall_CL"));
    let hunting = content_files("Hunting Queries", ".yaml");
    for (path, doc) in hunting.iter().zip(yaml_files(&hunting)) {
        let query = doc["query"].as_str().unwrap();
        for table in &typed {
            assert!(!query.contains(table), "{} reads {table} directly", path.display());
        }
    }
    // An analytic rule may read a typed table only for its arrival times (connector health): the
    // statement that reads it uses ingestion_time(), never the stored TimeGenerated.
    let rules = content_files("Analytic Rules", ".yaml");
    for (path, doc) in rules.iter().zip(yaml_files(&rules)) {
        for statement in doc["query"].as_str().unwrap().split(';') {
            if typed.iter().any(|t| statement.contains(t)) {
                assert!(
                    statement.contains("ingestion_time()") && !statement.contains("TimeGenerated"),
                    "{} reads a typed table's stored TimeGenerated: {statement}",
                    path.display()
                );
            }
        }
    }
}

/// A rule's `5m` / `1h` / `3d` in minutes.
fn minutes(d: &Value) -> u64 {
    let d = d.as_str().unwrap_or_default();
    let (n, unit) = d.split_at(d.len().saturating_sub(1));
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("{d} is not a rule duration"));
    n * match unit {
        "m" => 1,
        "h" => 60,
        "d" => 24 * 60,
        _ => panic!("{d} is not a rule duration"),
    }
}

#[test]
fn rules_that_judge_rows_on_arrival_read_back_far_enough_to_see_them() {
    // Sentinel runs a rule over the rows whose stored TimeGenerated is within queryPeriod. A row's
    // stored TimeGenerated is its call's start when it arrives within 2 days of it (Logs Ingestion
    // keeps it), so a rule that judges each row in the run after it arrived must read back 2 days
    // plus its frequency, or a row that came 47 hours late is outside the run that should judge it.
    let rules = content_files("Analytic Rules", ".yaml");
    let mut judged_on_arrival = 0;
    for (path, doc) in rules.iter().zip(yaml_files(&rules)) {
        if !doc["query"].as_str().unwrap().contains("IngestedAt > query_now - query_frequency") {
            continue;
        }
        judged_on_arrival += 1;
        let (period, frequency) = (minutes(&doc["queryPeriod"]), minutes(&doc["queryFrequency"]));
        assert!(
            period >= 2 * 24 * 60 + frequency,
            "{}: queryPeriod {:?} is too short",
            path.display(),
            doc["queryPeriod"]
        );
    }
    assert_eq!(judged_on_arrival, 2, "the emergency and high-risk destination rules");
}

// ---- the solution package, as Azure-Sentinel's packaging tool (V3) and its CI read it -----------------

/// `Data/Solution_*.json`, the packaging tool's input (exactly one).
fn solution_data() -> (PathBuf, Value) {
    let files = content_files("Data", ".json");
    assert_eq!(files.len(), 1, "Data/ holds one solution file: {files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("Solution_"), "{name}");
    (files[0].clone(), read_json(&files[0]))
}

/// A content path of the data file as the tool resolves it: relative to the solution folder, with
/// a leading `/`, the base path, `Solutions/` and the solution's name taken off.
fn solution_path(data: &Value, path: &str) -> PathBuf {
    let base = data["BasePath"].as_str().unwrap_or_default();
    let name = data["Name"].as_str().unwrap();
    let mut p = path.strip_prefix(&format!("{base}/")).unwrap_or(path).trim_start_matches('/');
    p = p.strip_prefix("Solutions/").unwrap_or(p);
    p = p.strip_prefix(&format!("{name}/")).unwrap_or(p);
    Path::new(SENTINEL).join(p)
}

const CONTENT: [(&str, &str, &str); 6] = [
    ("Data Connectors", "Data Connectors", ".json"),
    ("Analytic Rules", "Analytic Rules", ".yaml"),
    ("Hunting Queries", "Hunting Queries", ".yaml"),
    ("Parsers", "Parsers", ".yaml"),
    ("Workbooks", "Workbooks", ".json"),
    ("Watchlists", "Watchlists", ".json"),
];

#[test]
fn the_solution_data_file_lists_every_content_file_and_only_those() {
    let (file, data) = solution_data();
    let name = data["Name"].as_str().unwrap();
    // The tool reads Solutions/<Name>/<Metadata>: Name is the solution's folder name, which the
    // base path ends with; the data file is named after it.
    assert_eq!(file.file_name().unwrap().to_str().unwrap(), format!("Solution_{}.json", name.replace(' ', "")));
    assert!(data["BasePath"].as_str().unwrap().ends_with(&format!("/Solutions/{name}")), "{}", data["BasePath"]);
    assert!(solution_path(&data, data["Metadata"].as_str().unwrap()).is_file(), "no {}", data["Metadata"]);
    let version = data["Version"].as_str().unwrap();
    let parts: Vec<u32> = version.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(parts.len() == 3 && parts[0] >= 3, "Version {version}: 3.x.y makes a contentPackage");
    assert_eq!(data["TemplateSpec"], true);
    assert!(data["Is1PConnector"].is_boolean());
    for key in ["Name", "Author", "Logo", "Description"] {
        assert!(data[key].as_str().is_some_and(|s| !s.trim().is_empty()), "{key}");
    }
    // The tool walks every array as a list of paths: the descriptions must be strings.
    for key in ["WorkbookDescription", "WatchlistDescription"] {
        assert!(data[key].is_string() || data[key].is_null(), "{key} must be a string");
    }

    for (key, folder, ext) in CONTENT {
        let listed: BTreeSet<PathBuf> = data[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}"))
            .iter()
            .map(|p| solution_path(&data, p.as_str().unwrap()))
            .collect();
        for p in &listed {
            assert!(p.is_file(), "{key} lists {}, which does not exist", p.display());
            assert!(
                p.starts_with(Path::new(SENTINEL).join(folder)) && p.to_str().unwrap().ends_with(ext),
                "{}",
                p.display()
            );
        }
        let present: BTreeSet<PathBuf> = content_files(folder, ext).into_iter().collect();
        assert_eq!(listed, present, "{key} lists other files than {folder}/ holds");
        // Nothing else in the folder, but the watchlists' CSV sources.
        for entry in std::fs::read_dir(Path::new(SENTINEL).join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let text = path.to_str().unwrap();
            let source = folder == "Watchlists" && text.ends_with(".csv") && path.with_extension("json").is_file();
            assert!(text.ends_with(ext) || source, "{} is neither content nor a watchlist's CSV", path.display());
        }
    }
    assert!(
        data["Data Connectors"].as_array().is_some(),
        "Data Connectors must be a list (empty: none in the gallery)"
    );
}

#[test]
fn the_solution_metadata_has_what_the_packaging_ci_requires() {
    let meta = read_json(&Path::new(SENTINEL).join("SolutionMetadata.json"));
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    // solutionId = publisherId.offerId must be one dot, all lower case.
    let (publisher, offer) = (text(&meta["publisherId"]), text(&meta["offerId"]));
    for id in [&publisher, &offer] {
        assert!(!id.is_empty() && !id.contains('.') && *id == id.to_lowercase(), "publisherId / offerId {id}");
    }
    let date = text(&meta["firstPublishDate"]);
    assert!(date.len() == 10 && callrecords::values::parse_timestamp(&format!("{date}T00:00:00Z")).is_some(), "{date}");
    assert!(meta["providers"].as_array().is_some_and(|p| !p.is_empty() && p.iter().all(Value::is_string)));
    let domains = [
        "Application",
        "Cloud Provider",
        "Compliance",
        "DevOps",
        "Identity",
        "Internet of Things (IoT)",
        "IT Operations",
        "Migration",
        "Networking",
        "Platform",
        "Security - Others",
        "Security - Threat Intelligence",
        "Security - Threat Protection",
        "Security - 0-day Vulnerability",
        "Security - Automation (SOAR)",
        "Security - Cloud Security",
        "Security - Information Protection",
        "Security - Insider Threat",
        "Security - Network",
        "Security - Vulnerability Management",
        "Storage",
        "Training and Tutorials",
        "User Behavior (UEBA)",
    ];
    let verticals = ["Aeronautics", "Education", "Finance", "Healthcare", "Manufacturing", "Retail"];
    let listed = |key: &str| -> Vec<String> {
        meta["categories"][key].as_array().unwrap_or_else(|| panic!("categories.{key}")).iter().map(text).collect()
    };
    assert!(
        !listed("domains").is_empty() && listed("domains").iter().all(|d| domains.contains(&d.as_str())),
        "{:?}",
        listed("domains")
    );
    assert!(listed("verticals").iter().all(|v| verticals.contains(&v.as_str())), "{:?}", listed("verticals"));
    let support = &meta["support"];
    assert!(!text(&support["name"]).is_empty());
    assert!(["Community", "Microsoft", "Partner"].contains(&text(&support["tier"]).as_str()), "{}", support["tier"]);
    let email = text(&support["email"]);
    let link = text(&support["link"]);
    let email_ok = email.split_once('@').is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !email.contains(' '));
    let link_ok = (link.starts_with("https://") || link.starts_with("http://")) && !link.contains(char::is_whitespace);
    assert!(
        (email.is_empty() || email_ok) && (link.is_empty() || link_ok) && (email_ok || link_ok),
        "support {support}"
    );

    // The package's descriptions may not say a bare "Sentinel" (CI's branding check).
    let (_, data) = solution_data();
    let mut descriptions: Vec<String> =
        ["Description", "WorkbookDescription", "WatchlistDescription"].iter().map(|k| text(&data[*k])).collect();
    let yaml: Vec<PathBuf> =
        ["Analytic Rules", "Hunting Queries"].iter().flat_map(|f| content_files(f, ".yaml")).collect();
    descriptions.extend(yaml_files(&yaml).iter().map(|d| text(&d["description"])));
    for d in descriptions {
        for (i, _) in d.match_indices("Sentinel") {
            assert!(
                d[..i].ends_with("Microsoft "),
                "a bare \"Sentinel\" (CI wants \"Microsoft Sentinel\" on one line) in: {d}"
            );
        }
    }
}

#[test]
fn content_ids_are_unique_guids_and_data_types_are_known_tables() {
    let files: Vec<PathBuf> =
        ["Analytic Rules", "Hunting Queries", "Parsers"].iter().flat_map(|f| content_files(f, ".yaml")).collect();
    let docs = yaml_files(&files);
    let mut ids = BTreeMap::new();
    for (path, doc) in files.iter().zip(&docs) {
        let id = doc["id"].as_str().unwrap_or_else(|| panic!("{}: no id", path.display())).to_lowercase();
        assert!(guid_shaped(&id), "{}: id {id} is not a GUID", path.display());
        if let Some(other) = ids.insert(id.clone(), path.clone()) {
            panic!("{} and {} share the id {id}", other.display(), path.display());
        }
    }
    // requiredDataConnectors name tables of our schema or Microsoft's tables the validator knows.
    let microsoft = read_json(&Path::new(SENTINEL).join("validate/sentinel-tables.json"));
    let known: BTreeSet<String> = schema::TABLES
        .iter()
        .map(|t| t.name.to_string())
        .chain(microsoft["Databases"]["Sentinel"]["Tables"].as_object().unwrap().keys().cloned())
        .collect();
    let mut used = BTreeSet::new();
    for (path, doc) in files.iter().zip(&docs).filter(|(p, _)| !p.starts_with(Path::new(SENTINEL).join("Parsers"))) {
        let connectors = doc["requiredDataConnectors"].as_array().unwrap_or_else(|| panic!("{}", path.display()));
        assert!(!connectors.is_empty(), "{}: no requiredDataConnectors", path.display());
        for c in connectors {
            let id = c["connectorId"].as_str().unwrap_or_default();
            assert!(
                ["TeamsSentinelCallRecords", "ThreatIntelligence"].contains(&id),
                "{}: connector {id}",
                path.display()
            );
            for t in c["dataTypes"].as_array().unwrap_or_else(|| panic!("{}: dataTypes", path.display())) {
                let t = t.as_str().unwrap();
                assert!(known.contains(t), "{}: dataTypes names {t}, no table we know", path.display());
                used.insert(t.to_string());
            }
        }
    }
    assert!(used.contains("TeamsPstnCall_CL") && used.contains("TeamsDirectRoutingCall_CL"), "{used:?}");
}

#[test]
fn the_watchlist_template_carries_its_csv_unchanged() {
    let dir = Path::new(SENTINEL).join("Watchlists");
    let csvs = content_files("Watchlists", ".csv");
    assert!(!csvs.is_empty());
    for csv_path in csvs {
        let csv = std::fs::read_to_string(&csv_path).unwrap();
        let json_path = csv_path.with_extension("json");
        let template = read_json(&json_path);
        let props = &template["resources"][0]["properties"];
        let alias = csv_path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(template["resources"].as_array().map(Vec::len), Some(1), "one watchlist per template");
        assert_eq!(template["resources"][0]["type"], "Microsoft.OperationalInsights/workspaces/providers/Watchlists");
        assert_eq!(props["watchlistAlias"], alias);
        assert_eq!(props["contentType"], "text/csv");
        assert_eq!(props["numberOfLinesToSkip"], 0);
        assert_eq!(
            props["rawContent"].as_str(),
            Some(csv.as_str()),
            "{} differs from {}: set rawContent to {}",
            json_path.display(),
            csv_path.display(),
            Value::String(csv.clone())
        );
        // Plain CSV the queries can rely on: the search key is a column, every line has every field.
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        assert!(header.contains(&props["itemsSearchKey"].as_str().unwrap()), "{header:?}");
        for (n, line) in csv.lines().enumerate() {
            assert_eq!(line.split(',').count(), header.len(), "{}:{}: {line}", csv_path.display(), n + 1);
            assert!(!line.contains('"'), "{}:{}: no quoting", csv_path.display(), n + 1);
        }
        assert!(dir.join(format!("{alias}.json")).is_file());
    }
    // Prefixes are E.164 (+ and 1 to 7 digits), each listed once.
    let prefixes = high_risk_prefixes();
    let unique: BTreeSet<&String> = prefixes.iter().collect();
    assert_eq!(unique.len(), prefixes.len(), "a prefix is listed twice");
    for p in &prefixes {
        assert!(
            p.starts_with('+') && (2..=8).contains(&p.len()) && p[1..].chars().all(|c| c.is_ascii_digit()),
            "prefix {p}"
        );
    }
}
