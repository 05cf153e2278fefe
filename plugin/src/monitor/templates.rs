//! Deployment content generated from the one schema ([`crate::schema::TABLES`]): the ARM templates
//! of the custom tables and of the data collection rule (with its endpoint and the role that lets
//! the app send), the Sentinel solution's data connector page, a Kusto database schema for the
//! KQL validator, and the table schemas Azure-Sentinel's own KQL validation reads; with the type
//! names each of
//! those formats uses and the workspace columns of the seed-compatible table. Pure: values and
//! strings; writing the files is the host's (`callrecords sentinel-templates`).

use serde_json::{Value, json};

use super::data_collector::{classic_column_name, classic_kind};
use crate::schema::{self, ColumnType, Table};

/// One generated file: its path relative to the output folder, and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Path relative to the output folder (`/`-separated).
    pub path: String,
    /// File contents.
    pub contents: String,
}

/// Monitoring Metrics Publisher, the built-in role that may send data to a DCR.
pub const MONITORING_METRICS_PUBLISHER: &str = "3913510d-42f4-4e42-8a64-420c390055eb";
/// ARM deployment template schema.
const ARM_SCHEMA: &str = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#";
/// Name of the database in the generated Kusto schema.
pub const DATABASE_NAME: &str = "TeamsSentinel";

/// Pretty JSON with a final newline, as the committed files are.
fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("JSON value serializes");
    s.push('\n');
    s
}

/// The columns a table has in the workspace: the typed tables as declared; the seed-compatible one
/// as the 2020 Data Collector setup created it (`TimeGenerated` plus suffixed columns).
pub fn workspace_columns(t: &Table) -> Vec<(String, ColumnType, String)> {
    if t.name == schema::SEED.name {
        let mut cols = vec![(
            "TimeGenerated".to_string(),
            ColumnType::Datetime,
            "startDateTime (lastModifiedDateTime when unknown).".to_string(),
        )];
        cols.extend(t.columns.iter().map(|c| (classic_column_name(c), classic_kind(c), c.description.to_string())));
        cols
    } else {
        t.columns.iter().map(|c| (c.name.to_string(), c.kind, c.description.to_string())).collect()
    }
}

/// The DCR transformation of a table's stream: `source` for the typed tables (the stream is the
/// table); for the seed-compatible table, the renaming the Data Collector API used to do.
pub fn transform_kql(t: &Table) -> String {
    if t.name != schema::SEED.name {
        return "source".to_string();
    }
    let mut cols = vec!["TimeGenerated".to_string()];
    for c in t.columns {
        let name = classic_column_name(c);
        let src = format!("['{}']", c.name);
        cols.push(match c.kind {
            ColumnType::Long | ColumnType::Real => format!("{name} = todouble({src})"),
            ColumnType::Dynamic => format!("{name} = tostring({src})"),
            _ => format!("{name} = {src}"),
        });
    }
    format!(
        "source | extend TimeGenerated = iff(isnull(startDateTime), lastModifiedDateTime, startDateTime) | project {}",
        cols.join(", ")
    )
}

/// KQL type names.
fn kql_type(k: ColumnType) -> &'static str {
    match k {
        ColumnType::String => "string",
        ColumnType::Long => "long",
        ColumnType::Real => "real",
        ColumnType::Boolean => "bool",
        ColumnType::Datetime => "datetime",
        ColumnType::Dynamic => "dynamic",
    }
}

/// Type names of the tables API (`dateTime`, not `datetime`).
fn table_api_type(k: ColumnType) -> &'static str {
    match k {
        ColumnType::String => "string",
        ColumnType::Long => "long",
        ColumnType::Real => "real",
        ColumnType::Boolean => "boolean",
        ColumnType::Datetime => "dateTime",
        ColumnType::Dynamic => "dynamic",
    }
}

/// Type names of DCR stream declarations.
fn stream_type(k: ColumnType) -> &'static str {
    match k {
        ColumnType::String => "string",
        ColumnType::Long => "long",
        ColumnType::Real => "real",
        ColumnType::Boolean => "boolean",
        ColumnType::Datetime => "datetime",
        ColumnType::Dynamic => "dynamic",
    }
}

/// The .NET type names of `.show database schema as json`.
fn dotnet_type(k: ColumnType) -> &'static str {
    match k {
        ColumnType::String => "System.String",
        ColumnType::Long => "System.Int64",
        ColumnType::Real => "System.Double",
        ColumnType::Boolean => "System.SByte",
        ColumnType::Datetime => "System.DateTime",
        ColumnType::Dynamic => "System.Object",
    }
}

/// `tables.json`: one `Microsoft.OperationalInsights/workspaces/tables` per table.
pub fn tables_template() -> Value {
    let resources: Vec<Value> = schema::TABLES
        .iter()
        .map(|t| {
            let columns: Vec<Value> = workspace_columns(t)
                .into_iter()
                .map(|(name, kind, description)| json!({"name": name, "type": table_api_type(kind), "description": description}))
                .collect();
            let mut r = json!({
                "type": "Microsoft.OperationalInsights/workspaces/tables",
                "apiVersion": "2022-10-01",
                "name": format!("[format('{{0}}/{{1}}', parameters('workspaceName'), '{}')]", t.name),
                "properties": {
                    "plan": "Analytics",
                    "retentionInDays": "[parameters('retentionInDays')]",
                    "schema": {"name": t.name, "description": t.description, "columns": columns},
                },
            });
            if t.name == schema::SEED.name {
                r["condition"] = json!("[parameters('deploySeedTable')]");
            }
            r
        })
        .collect();
    json!({
        "$schema": ARM_SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {
            "description": "Custom tables of teams-sentinel (Microsoft Teams callRecords). Generated by `callrecords sentinel-templates` from the plugin's schema: do not edit by hand.",
        },
        "parameters": {
            "workspaceName": {"type": "string", "metadata": {"description": "Log Analytics workspace (the Sentinel workspace) in this resource group."}},
            "retentionInDays": {"type": "int", "defaultValue": -1, "metadata": {"description": "Interactive retention of the tables; -1 keeps the workspace default."}},
            "deploySeedTable": {
                "type": "bool",
                "defaultValue": true,
                "metadata": {"description": format!("Create {} (the 2020 setup's table). Set false when the workspace already has it from the Data Collector API; migrate that table instead (see README).", schema::SEED.name)},
            },
        },
        "resources": resources,
        "outputs": {
            "tables": {"type": "array", "value": schema::TABLES.iter().map(|t| t.name).collect::<Vec<_>>()},
        },
    })
}

/// `dcr.json`: a data collection endpoint, the DCR (one stream per table) and the role
/// assignment that lets the app's service principal send to it.
pub fn dcr_template() -> Value {
    let mut declarations = serde_json::Map::new();
    let mut flows = vec![];
    for t in schema::TABLES {
        let columns: Vec<Value> =
            t.columns.iter().map(|c| json!({"name": c.name, "type": stream_type(c.kind)})).collect();
        declarations.insert(t.stream.to_string(), json!({"columns": columns}));
        flows.push(json!({
            "streams": [t.stream],
            "destinations": ["sentinelWorkspace"],
            "transformKql": transform_kql(t),
            "outputStream": schema::stream_name(t.name),
        }));
    }
    let streams: serde_json::Map<String, Value> =
        schema::TABLES.iter().map(|t| (t.name.to_string(), Value::from(t.stream))).collect();
    json!({
        "$schema": ARM_SCHEMA,
        "contentVersion": "1.0.0.0",
        "metadata": {
            "description": "Logs Ingestion for teams-sentinel: data collection endpoint, data collection rule (one stream per table) and the Monitoring Metrics Publisher role for the app. Generated by `callrecords sentinel-templates` from the plugin's schema: do not edit by hand. Deploy tables.json first.",
        },
        "parameters": {
            "workspaceName": {"type": "string", "metadata": {"description": "Log Analytics workspace (the Sentinel workspace) in this resource group; tables.json must be deployed to it first."}},
            "location": {"type": "string", "defaultValue": "[resourceGroup().location]", "metadata": {"description": "Region of the DCE and DCR: the workspace's region."}},
            "dataCollectionEndpointName": {"type": "string", "defaultValue": "teams-callrecords-dce"},
            "dataCollectionRuleName": {"type": "string", "defaultValue": "teams-callrecords-dcr"},
            "servicePrincipalObjectId": {"type": "string", "metadata": {"description": "Object id of the app registration's service principal (az ad sp show --id <client-id> --query id -o tsv): it gets Monitoring Metrics Publisher on the DCR."}},
        },
        "variables": {
            "dceId": "[resourceId('Microsoft.Insights/dataCollectionEndpoints', parameters('dataCollectionEndpointName'))]",
            "dcrId": "[resourceId('Microsoft.Insights/dataCollectionRules', parameters('dataCollectionRuleName'))]",
            "roleDefinitionId": format!("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '{MONITORING_METRICS_PUBLISHER}')]"),
        },
        "resources": [
            {
                "type": "Microsoft.Insights/dataCollectionEndpoints",
                "apiVersion": "2023-03-11",
                "name": "[parameters('dataCollectionEndpointName')]",
                "location": "[parameters('location')]",
                "properties": {"networkAcls": {"publicNetworkAccess": "Enabled"}},
            },
            {
                "type": "Microsoft.Insights/dataCollectionRules",
                "apiVersion": "2023-03-11",
                "name": "[parameters('dataCollectionRuleName')]",
                "location": "[parameters('location')]",
                "dependsOn": ["[variables('dceId')]"],
                "properties": {
                    "description": "Microsoft Teams callRecords (teams-sentinel) into custom tables.",
                    "dataCollectionEndpointId": "[variables('dceId')]",
                    "streamDeclarations": declarations,
                    "destinations": {
                        "logAnalytics": [{
                            "name": "sentinelWorkspace",
                            "workspaceResourceId": "[resourceId('Microsoft.OperationalInsights/workspaces', parameters('workspaceName'))]",
                        }],
                    },
                    "dataFlows": flows,
                },
            },
            {
                "type": "Microsoft.Authorization/roleAssignments",
                "apiVersion": "2022-04-01",
                "scope": "[format('Microsoft.Insights/dataCollectionRules/{0}', parameters('dataCollectionRuleName'))]",
                "name": "[guid(variables('dcrId'), parameters('servicePrincipalObjectId'), variables('roleDefinitionId'))]",
                "dependsOn": ["[variables('dcrId')]"],
                "properties": {
                    "roleDefinitionId": "[variables('roleDefinitionId')]",
                    "principalId": "[parameters('servicePrincipalObjectId')]",
                    "principalType": "ServicePrincipal",
                },
            },
        ],
        "outputs": {
            "dataCollectionRuleImmutableId": {"type": "string", "value": "[reference(variables('dcrId'), '2023-03-11').immutableId]"},
            "logsIngestionEndpoint": {"type": "string", "value": "[reference(variables('dceId'), '2023-03-11').logsIngestion.endpoint]"},
            "streams": {"type": "object", "value": streams},
            "dataCollectionRuleId": {"type": "string", "value": "[variables('dcrId')]"},
        },
    })
}

/// `database-schema.json`: the workspace's tables in the format of Kusto's
/// `.show database schema as json`, for the KQL validator.
pub fn database_schema() -> Value {
    let mut tables = serde_json::Map::new();
    for t in schema::TABLES {
        let columns: Vec<Value> = workspace_columns(t)
            .into_iter()
            .map(|(name, kind, doc)| {
                json!({"Name": name, "Type": dotnet_type(kind), "CslType": kql_type(kind), "DocString": doc})
            })
            .collect();
        tables
            .insert(t.name.to_string(), json!({"Name": t.name, "DocString": t.description, "OrderedColumns": columns}));
    }
    json!({
        "Plugins": [],
        "Databases": {
            DATABASE_NAME: {
                "Name": DATABASE_NAME,
                "Tables": tables,
                "ExternalTables": {},
                "MaterializedViews": {},
                "Functions": {},
            },
        },
    })
}

/// Id of the data connector the Sentinel content names in `requiredDataConnectors`.
pub const DATA_CONNECTOR_ID: &str = "TeamsSentinelCallRecords";

/// `Data Connectors/TeamsCallRecords_DataConnector.json`: the connector page of the Sentinel
/// solution (Sentinel's "GenericUI" connector definition), one data type per typed table with the
/// queries the page shows; how to send data is the plugin's, so the steps point to its deployment.
pub fn data_connector() -> Value {
    let typed: Vec<&Table> = schema::TABLES.iter().filter(|t| t.name != schema::SEED.name).collect();
    let data_types: Vec<Value> = typed
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "lastDataReceivedQuery": format!("{}\n| summarize Time = max(TimeGenerated)\n| where isnotempty(Time)", t.name),
            })
        })
        .collect();
    let graph_queries: Vec<Value> = typed
        .iter()
        .map(|t| json!({"metricName": format!("Rows received in {}", t.name), "legend": t.name, "baseQuery": t.name}))
        .collect();
    let tables: Vec<String> = typed.iter().map(|t| format!("- **{}**: {}", t.name, t.description)).collect();
    json!({
        "id": DATA_CONNECTOR_ID,
        "title": "Microsoft Teams call records (teams-sentinel)",
        "publisher": "teams-sentinel",
        "descriptionMarkdown": format!(
            "Every Microsoft Teams call from Microsoft Graph: callRecords (sessions, segments, media streams and participants) as Graph's change notifications announce them, and the PSTN and Direct Routing call logs, polled. The teams-sentinel plugin sends them through a data collection rule (Logs Ingestion API) into these tables:\n\n{}\n\nGenerated by `callrecords sentinel-templates` from the plugin's schema: do not edit by hand.",
            tables.join("\n")
        ),
        "graphQueries": graph_queries,
        "sampleQueries": [
            {"description": "Calls from external tenants in the last day", "query": "TeamsCalls()\n| where CallerIsExternal\n| take 10"},
            {"description": "PSTN spend per user in the last 30 days", "query": "TeamsPstnCall_CL\n| where StartDateTime > ago(30d)\n| summarize Charge = sum(Charge) by UserPrincipalName, Currency\n| top 10 by Charge"},
        ],
        "dataTypes": data_types,
        "connectivityCriterias": [{
            "type": "IsConnectedQuery",
            "value": [format!("{}\n| summarize LastLogReceived = max(TimeGenerated)\n| project IsConnected = LastLogReceived > ago(7d)", schema::CALL.name)],
        }],
        "availability": {"status": 1, "isPreview": true},
        "permissions": {
            "resourceProvider": [{
                "provider": "Microsoft.OperationalInsights/workspaces",
                "permissionsDisplayText": "read and write permissions are required.",
                "providerDisplayName": "Workspace",
                "scope": "Workspace",
                "requiredPermissions": {"write": true, "read": true, "delete": true},
            }],
            "customs": [
                {"name": "Microsoft Graph", "description": "An app registration (or managed identity) with the application permission CallRecords.Read.All, admin-consented: it reads callRecords and the PSTN and Direct Routing logs (older Microsoft pages name CallRecord-PstnCalls.Read.All for the logs)."},
                {"name": "Data collection rule", "description": "Monitoring Metrics Publisher on the data collection rule, for the same identity (dcr.json assigns it)."},
            ],
        },
        "instructionSteps": [
            {"title": "1. Create the tables and the data collection rule", "description": "Deploy tables.json, then dcr.json, to the Microsoft Sentinel workspace's resource group (see examples/sentinel/README.md: one command each)."},
            {"title": "2. Run the plugin", "description": "Run `callrecords serve` (or the service component in your log shipper) with the CALLRECORDS_* settings the DCR deployment prints; it creates the Graph subscription, ships each call as it ends, and polls the PSTN and Direct Routing logs every hour."},
            {"title": "3. Install the content", "description": "Save the parsers (TeamsCalls, TeamsPstnCalls, ...), upload the watchlist, and import the analytic rules, hunting queries and workbook of this solution."},
        ],
    })
}

/// `validate/CustomTables/<Table>.json`: each table's columns in the form the Azure-Sentinel
/// repository's KQL validation reads them (`.script/tests/KqlvalidationsTests/CustomTables/`):
/// a solution's queries on custom tables fail its CI without them.
pub fn azure_sentinel_table_schemas() -> Vec<Generated> {
    schema::TABLES
        .iter()
        .map(|t| {
            let properties: Vec<Value> = workspace_columns(t)
                .into_iter()
                .map(|(name, kind, _)| json!({"Name": name, "Type": kql_type(kind)}))
                .collect();
            Generated {
                path: format!("validate/CustomTables/{}.json", t.name),
                contents: pretty(&json!({"Name": t.name, "Properties": properties})),
            }
        })
        .collect()
}

/// Every file `sentinel-templates` writes.
pub fn templates() -> Vec<Generated> {
    let mut files = vec![
        Generated { path: "tables.json".into(), contents: pretty(&tables_template()) },
        Generated { path: "dcr.json".into(), contents: pretty(&dcr_template()) },
        Generated { path: "validate/database-schema.json".into(), contents: pretty(&database_schema()) },
        Generated {
            path: "Data Connectors/TeamsCallRecords_DataConnector.json".into(),
            contents: pretty(&data_connector()),
        },
    ];
    files.extend(azure_sentinel_table_schemas());
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{CALL, SEED, TABLES};

    const KINDS: [ColumnType; 6] = [
        ColumnType::String,
        ColumnType::Long,
        ColumnType::Real,
        ColumnType::Boolean,
        ColumnType::Datetime,
        ColumnType::Dynamic,
    ];

    /// The names each format documents: the Tables API's ColumnTypeEnum (`dateTime`), a DCR
    /// stream declaration's column types (`datetime`, `boolean`), KQL's scalar types (`bool`),
    /// and Kusto's .NET types (a `bool` is stored as int8: `System.SByte`).
    #[test]
    fn each_format_gets_its_documented_type_names() {
        assert_eq!(KINDS.map(table_api_type), ["string", "long", "real", "boolean", "dateTime", "dynamic"]);
        assert_eq!(KINDS.map(stream_type), ["string", "long", "real", "boolean", "datetime", "dynamic"]);
        assert_eq!(KINDS.map(kql_type), ["string", "long", "real", "bool", "datetime", "dynamic"]);
        assert_eq!(
            KINDS.map(dotnet_type),
            ["System.String", "System.Int64", "System.Double", "System.SByte", "System.DateTime", "System.Object"]
        );
    }

    #[test]
    fn the_seed_table_has_the_data_collector_columns_in_the_workspace() {
        let names: Vec<String> = workspace_columns(&SEED).into_iter().map(|(n, _, _)| n).collect();
        let want = [
            "TimeGenerated",
            "id_s",
            "version_d",
            "Type_s",
            "modalities_s",
            "lastModifiedDateTime_t",
            "startDateTime_t",
            "endDateTime_t",
            "joinWebUrl_s",
            "organizer_user_id_s",
            "organizer_user_displayName_s",
            "organizer_user_tenantId_s",
            "organizer_phone_id_s",
            "organizer_phone_displayName_s",
            "participants_s",
            "sessions_s",
        ];
        assert_eq!(names, want);
        let typed: Vec<(String, ColumnType)> = workspace_columns(&CALL).into_iter().map(|(n, k, _)| (n, k)).collect();
        let declared: Vec<(String, ColumnType)> = CALL.columns.iter().map(|c| (c.name.to_string(), c.kind)).collect();
        assert_eq!(typed, declared, "a typed table is in the workspace as declared");
    }

    #[test]
    fn only_the_seed_stream_is_transformed() {
        for t in TABLES.iter().filter(|t| t.name != SEED.name) {
            assert_eq!(transform_kql(t), "source", "{}", t.name);
        }
        let seed = transform_kql(&SEED);
        let head = "source | extend TimeGenerated = iff(isnull(startDateTime), lastModifiedDateTime, startDateTime) \
                    | project TimeGenerated, id_s = ['id'], version_d = todouble(['version']), Type_s = ['type'], \
                    modalities_s = ['modalities'],";
        assert!(seed.starts_with(head), "{seed}");
        assert!(seed.ends_with(", sessions_s = ['sessions']"), "{seed}");
    }

    #[test]
    fn the_dcr_sends_each_table_to_its_custom_stream_with_the_publisher_role() {
        let dcr = dcr_template();
        assert_eq!(dcr["$schema"], "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#");
        // Monitoring Metrics Publisher, as Azure's built-in roles list it.
        let role = dcr["variables"]["roleDefinitionId"].as_str().unwrap();
        assert!(role.contains("'3913510d-42f4-4e42-8a64-420c390055eb'"), "{role}");
        let rule = &dcr["resources"][1];
        assert_eq!(rule["type"], "Microsoft.Insights/dataCollectionRules");
        let flows = rule["properties"]["dataFlows"].as_array().unwrap();
        assert_eq!(flows.len(), TABLES.len());
        for (t, flow) in TABLES.iter().zip(flows) {
            let stream = format!("Custom-{}", t.name);
            assert_eq!(flow["streams"], json!([stream]));
            assert_eq!(flow["outputStream"], stream);
            let declared = &rule["properties"]["streamDeclarations"][&stream]["columns"];
            assert_eq!(declared.as_array().map(Vec::len), Some(t.columns.len()), "{stream}");
        }
    }

    #[test]
    fn the_data_connector_lists_every_typed_table() {
        let c = data_connector();
        assert_eq!(c["id"], DATA_CONNECTOR_ID);
        let types: Vec<&str> = c["dataTypes"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "TeamsCall_CL",
                "TeamsCallLeg_CL",
                "TeamsCallStream_CL",
                "TeamsCallParticipant_CL",
                "TeamsPstnCall_CL",
                "TeamsDirectRoutingCall_CL"
            ]
        );
        for t in c["dataTypes"].as_array().unwrap() {
            assert!(t["lastDataReceivedQuery"].as_str().unwrap().starts_with(t["name"].as_str().unwrap()));
        }
    }

    #[test]
    fn templates_are_four_files_and_a_schema_per_table_of_pretty_json() {
        let files = templates();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths[..4],
            [
                "tables.json",
                "dcr.json",
                "validate/database-schema.json",
                "Data Connectors/TeamsCallRecords_DataConnector.json"
            ]
        );
        let schemas: Vec<String> = TABLES.iter().map(|t| format!("validate/CustomTables/{}.json", t.name)).collect();
        assert_eq!(paths[4..], schemas.iter().map(String::as_str).collect::<Vec<_>>());
        for f in &files {
            assert!(f.contents.ends_with("}\n"), "{}", f.path);
            let v: Value = serde_json::from_str(&f.contents).unwrap();
            assert_eq!(pretty(&v), f.contents, "{}", f.path);
        }
        let tables = tables_template();
        assert_eq!(tables["resources"].as_array().map(Vec::len), Some(TABLES.len()));
        let schema = database_schema();
        let call = &schema["Databases"][DATABASE_NAME]["Tables"][CALL.name]["OrderedColumns"][0];
        assert_eq!(
            (&call["Name"], &call["CslType"], &call["Type"]),
            (&json!("TimeGenerated"), &json!("datetime"), &json!("System.DateTime"))
        );
    }
}
