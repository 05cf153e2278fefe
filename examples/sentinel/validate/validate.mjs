// Parses and semantically checks every KQL text of examples/sentinel with the Kusto language
// service (Kusto.Language, as used by Azure Data Explorer and Log Analytics editors):
//   Parsers/*.yaml           each declares a workspace function (FunctionName, FunctionParams,
//                            FunctionQuery), which the other queries may call
//   Hunting Queries/*.yaml   the `query` of each hunting query
//   Analytic Rules/*.yaml    the `query` of each scheduled analytic rule, and the rule's fields
//   Workbooks/*.json         every query item
//   Data Connectors/*.json   the queries of the connector page (last data, graphs, samples, connected)
//   dcr.json                 each data flow's transformKql, against its stream declaration
// against database-schema.json (generated from the plugin's schema by
// `callrecords sentinel-templates`) plus sentinel-tables.json (Microsoft's tables the queries
// join, hand-listed), with the parsers declared as functions and `_GetWatchlist(alias)` declared
// with the columns of the watchlists in Watchlists/*.json (their CSV header, SearchKey and the
// columns Sentinel adds), so column references after it are checked too.
//
// Usage: node validate.mjs [FILE...]   (no FILE: everything above; a .kql FILE is checked as a
// query, a YAML FILE as a parser, rule or hunting query by its keys)
// Hunting queries and rules: entity mappings must name returned columns, with entity types and
// identifiers Sentinel's CI accepts; id a GUID; known tactics, and each technique's tactic listed.
// Rules also: the fields and ranges Sentinel's detection-template CI enforces (see checkRule).
// Prints `file:line:col: severity: message` per problem; exits 1 if there is any.

import { createRequire } from "node:module";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const require = createRequire(import.meta.url);
require("@kusto/language-service-next/bridge.min.js");
require("@kusto/language-service-next/Kusto.Language.Bridge.min.js");
const K = globalThis.Kusto.Language;
const S = K.Symbols;
const toArray = (x) => globalThis.Bridge.toArray(x);

const here = dirname(fileURLToPath(import.meta.url));
const content = resolve(here, "..");
const shown = (file) => relative(process.cwd(), file) || file;

// ---- schema ---------------------------------------------------------------------------------------

function scalar(cslType) {
  const t = S.ScalarTypes.GetSymbol(cslType === "boolean" ? "bool" : cslType);
  if (!t) throw new Error(`unknown column type ${cslType}`);
  return t;
}

function tableSymbol(name, columns) {
  const cols = columns.map(([n, t]) => new S.ColumnSymbol.ctor(n, scalar(t), null, null, null, null));
  return new S.TableSymbol.$ctor4(name, cols);
}

/** Tables of a `.show database schema as json` document. */
function schemaTables(file) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  const tables = [];
  for (const db of Object.values(doc.Databases)) {
    for (const t of Object.values(db.Tables)) {
      tables.push({ name: t.Name, columns: t.OrderedColumns.map((c) => [c.Name, c.CslType]) });
    }
  }
  return tables;
}

/** `let` statements giving each parameter its default, so the body can be analyzed alone. */
function paramPrefix(file, params) {
  const defaults = [];
  for (const p of params ? splitTopLevel(params) : []) {
    const m = /^\s*(\w+)\s*:\s*(\w+)\s*=\s*(.+?)\s*$/.exec(p);
    if (!m) throw new Error(`${shown(file)}: parameter without a default: ${p}`);
    defaults.push(`let ${m[1]} = ${m[3]};`);
  }
  return defaults.join("\n") + (defaults.length ? "\n" : "");
}

/** A query file with a `// Function: Name` and `// Parameters: a:type = default, ...` header. */
function parseKqlParser(file) {
  const text = readFileSync(file, "utf8");
  const name = /^\/\/ Function:\s*(\w+)\s*$/m.exec(text)?.[1];
  if (!name) return null;
  const params = /^\/\/ Parameters:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? "";
  return { file, name, params, text, firstLine: 1, prefix: paramPrefix(file, params) };
}

/** A solution parser: Parsers/*.yaml with FunctionName, FunctionParams and FunctionQuery. */
function parseYamlParser(file) {
  const text = readFileSync(file, "utf8");
  const doc = YAML.parseDocument(text);
  if (doc.errors.length || !doc.has("FunctionQuery")) return null;
  const meta = doc.toJS();
  const params = (meta.FunctionParams ?? []).map((p) => `${p.Name}:${p.Type} = ${p.Default}`).join(", ");
  const q = doc.get("FunctionQuery", true);
  return {
    file, name: String(meta.FunctionName ?? ""), params, text: String(q.value ?? ""), doc, source: text,
    firstLine: blockStart(text, q), prefix: paramPrefix(file, params),
  };
}

function splitTopLevel(s) {
  const out = [];
  let depth = 0, cur = "";
  for (const ch of s) {
    if ("([".includes(ch)) depth++;
    if (")]".includes(ch)) depth--;
    if (ch === "," && depth === 0) { out.push(cur); cur = ""; } else cur += ch;
  }
  if (cur.trim()) out.push(cur);
  return out;
}

/** Watchlists/*.json: the ARM fragment the packaging tool reads, its CSV in rawContent. */
function parseWatchlist(file) {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  const props = doc.resources?.[0]?.properties ?? {};
  const header = String(props.rawContent ?? "").split("\n")[0].replace(/\r$/, "");
  return { file, alias: props.watchlistAlias, searchKey: props.itemsSearchKey, columns: header ? header.split(",") : [] };
}

/** `_GetWatchlist(alias)`: every watchlist's CSV columns (strings) plus what Sentinel adds. */
function watchlistFunction(watchlists) {
  const columns = new Map([["_DTItemId", "string"], ["LastUpdatedTimeUTC", "datetime"], ["SearchKey", "string"]]);
  for (const w of watchlists) for (const c of w.columns) if (!columns.has(c)) columns.set(c, "string");
  columns.set("WatchlistItem", "dynamic");
  const schema = [...columns].map(([n, t]) => `['${n}']:${t}`).join(", ");
  return new S.FunctionSymbol.$ctor16("_GetWatchlist", "(watchlistAlias:string)", `{ datatable(${schema}) [] }`, null);
}

function globalsWith(tables, parsers, watchlists) {
  const members = tables.map((t) => tableSymbol(t.name, t.columns));
  for (const p of parsers) {
    members.push(new S.FunctionSymbol.$ctor16(p.name, `(${p.params})`, `{\n${p.text}\n}`, null));
  }
  if (watchlists.length) members.push(watchlistFunction(watchlists));
  const db = new S.DatabaseSymbol.$ctor3("TeamsSentinel", null, members, false);
  return K.GlobalState.Default.WithDatabase(db);
}

// ---- checking -------------------------------------------------------------------------------------

const problems = [];

/** Where `index` of `text` is, as line and column (both from 1). */
function lineCol(text, index) {
  const before = text.slice(0, Math.max(index, 0)).split("\n");
  return [before.length, before[before.length - 1].length + 1];
}

/** Report a problem at a YAML node (or at the top of the file). */
function report(file, text, node, message) {
  const [line, col] = node?.range ? lineCol(text, node.range[0]) : [1, 1];
  problems.push(`${shown(file)}:${line}:${col}: error: ${message}`);
}

/** The line a scalar's value starts on: a block scalar's starts on the line after `key: |`. */
function blockStart(text, node) {
  const line = lineCol(text, node.range[0])[0];
  return line + (node.type === "BLOCK_LITERAL" || node.type === "BLOCK_FOLDED" ? 1 : 0);
}

/** Analyze `text`; report diagnostics at `file`, shifting lines by `lineOffset`. */
function check(globals, text, file, lineOffset = 0, skipChars = 0) {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  for (const d of toArray(code.GetDiagnostics())) {
    const [line, col] = lineCol(text.slice(skipChars), d.Start - skipChars);
    problems.push(`${shown(file)}:${line + lineOffset}:${col}: ${String(d.Severity).toLowerCase()}: ${d.Message}`);
  }
  checkWatchlistAliases(text.slice(skipChars), file, lineOffset);
  return code;
}

let knownAliases = [];

/** Every `_GetWatchlist('alias')` names a watchlist of Watchlists/. */
function checkWatchlistAliases(text, file, lineOffset) {
  for (const m of text.matchAll(/_GetWatchlist\s*\(\s*(['"])([^'"]*)\1/g)) {
    if (!knownAliases.includes(m[2])) {
      const [line, col] = lineCol(text, m.index);
      problems.push(`${shown(file)}:${line + lineOffset}:${col}: error: no watchlist with alias '${m[2]}' in Watchlists/`);
    }
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkParser(globals, p) {
  if (p.doc) {
    const at = (path) => p.doc.getIn(path, true);
    const meta = p.doc.toJS();
    for (const key of ["id", "Function", "Category", "FunctionName", "FunctionAlias", "FunctionQuery"]) {
      if (!p.doc.has(key)) report(p.file, p.source, null, `missing ${key}`);
    }
    for (const key of ["Title", "Version", "LastUpdated"]) {
      if (meta.Function && meta.Function[key] == null) report(p.file, p.source, at(["Function"]), `missing Function.${key}`);
    }
    if (meta.id != null && !GUID.test(String(meta.id))) report(p.file, p.source, at(["id"]), `id is not a GUID: ${meta.id}`);
    if (!/^\w+$/.test(p.name)) report(p.file, p.source, at(["FunctionName"]), `FunctionName must be letters, digits and _`);
    if (meta.FunctionAlias != null && meta.FunctionAlias !== meta.FunctionName) {
      report(p.file, p.source, at(["FunctionAlias"]), `FunctionAlias ${meta.FunctionAlias} differs from FunctionName ${p.name}`);
    }
  }
  check(globals, p.prefix + p.text, p.file, p.firstLine - 1, p.prefix.length);
}

// Microsoft Sentinel's tactic names (MITRE ATT&CK enterprise tactics, no spaces).
const TACTICS = [
  "Reconnaissance", "ResourceDevelopment", "InitialAccess", "Execution", "Persistence", "PrivilegeEscalation",
  "DefenseEvasion", "CredentialAccess", "Discovery", "LateralMovement", "Collection", "CommandAndControl",
  "Exfiltration", "Impact", "ImpairProcessControl", "InhibitResponseFunction", "PreAttack",
];

// The ATT&CK tactics of each technique the content uses (Sentinel's CI requires, for every
// technique, one of its tactics in `tactics`). A technique not listed here is reported: add it.
const TECHNIQUE_TACTICS = {
  T1048: ["Exfiltration"],
  T1071: ["CommandAndControl"],
  T1078: ["DefenseEvasion", "Persistence", "PrivilegeEscalation", "InitialAccess"],
  T1123: ["Collection"],
  T1219: ["CommandAndControl"],
  T1496: ["Impact"],
  T1498: ["Impact"],
  T1499: ["Impact"],
  T1562: ["DefenseEvasion"],
  T1566: ["InitialAccess"],
  T1589: ["Reconnaissance"],
  T1595: ["Reconnaissance"],
  T1598: ["Reconnaissance"],
};

// Entity types, their identifiers and the identifier sets of which one must be mapped, as
// Sentinel's detection-template CI accepts them (EntityMappingIdentifiers.cs).
const ENTITIES = {
  Account: [["Name", "FullName", "NTDomain", "DnsDomain", "UPNSuffix", "Sid", "AadTenantId", "AadUserId", "PUID",
    "IsDomainJoined", "DisplayName", "ObjectGuid", "CloudAppAccountId"], [["FullName"], ["Sid"], ["Name"], ["AadUserId"], ["PUID"], ["ObjectGuid"]]],
  AzureResource: [["ResourceId"], [["ResourceId"]]],
  CloudApplication: [["AppId", "Name", "InstanceName"], [["AppId"], ["Name"]]],
  DNS: [["DomainName"], [["DomainName"]]],
  File: [["Directory", "Name"], [["Name"]]],
  FileHash: [["Algorithm", "Value"], [["Algorithm", "Value"]]],
  Host: [["DnsDomain", "NTDomain", "HostName", "FullName", "NetBiosName", "AzureID", "OMSAgentID", "OSFamily", "OSVersion",
    "IsDomainJoined"], [["FullName"], ["HostName"], ["NetBiosName"], ["AzureID"], ["OMSAgentID"]]],
  IP: [["Address"], [["Address"]]],
  Mailbox: [["MailboxPrimaryAddress", "DisplayName", "Upn", "ExternalDirectoryObjectId", "RiskLevel"], [["MailboxPrimaryAddress"]]],
  Malware: [["Name", "Category"], [["Name"]]],
  Process: [["ProcessId", "CommandLine", "ElevationToken", "CreationTimeUtc"], [["CommandLine"], ["ProcessId"]]],
  RegistryKey: [["Hive", "Key"], [["Key"], ["Hive"]]],
  RegistryValue: [["Name", "Value", "ValueType"], [["Name"]]],
  SecurityGroup: [["DistinguishedName", "SID", "ObjectGuid"], [["DistinguishedName"], ["SID"], ["ObjectGuid"]]],
  URL: [["Url"], [["Url"]]],
};

const COLUMN = /^[a-zA-Z_]+\w*$/;

/** The checks hunting queries and rules share; returns the parsed document or null. */
function checkQueryDocument(globals, file, required) {
  const text = readFileSync(file, "utf8");
  const doc = YAML.parseDocument(text);
  if (doc.errors.length) {
    for (const e of doc.errors) problems.push(`${shown(file)}:${e.linePos?.[0]?.line ?? 1}:${e.linePos?.[0]?.col ?? 1}: error: YAML: ${e.message}`);
    return null;
  }
  const q = doc.get("query", true);
  if (!q || typeof q.value !== "string") {
    report(file, text, null, "no query");
    return null;
  }
  const code = check(globals, q.value, file, blockStart(text, q) - 1);
  const at = (...path) => doc.getIn(path, true);
  for (const key of required) {
    if (!doc.has(key)) report(file, text, null, `missing ${key}`);
  }
  const meta = doc.toJS();
  const columns = new Set(toArray(code.ResultType?.Columns ?? []).map((c) => c.Name));
  const returned = (name) => columns.has(name);
  if (meta.id != null && !GUID.test(String(meta.id))) report(file, text, at("id"), `id is not a GUID: ${meta.id}`);
  (meta.tactics ?? []).forEach((t, i) => {
    if (!TACTICS.includes(t)) report(file, text, at("tactics", i), `unknown tactic ${t}`);
  });
  (meta.relevantTechniques ?? []).forEach((t, i) => {
    if (!/^T\d{4}(\.\d{3})?$/.test(t)) return report(file, text, at("relevantTechniques", i), `not a MITRE technique id: ${t}`);
    const tactics = TECHNIQUE_TACTICS[t.slice(0, 5)];
    if (!tactics) report(file, text, at("relevantTechniques", i), `no tactics known for ${t}: add it to TECHNIQUE_TACTICS in validate.mjs`);
    else if (!tactics.some((x) => (meta.tactics ?? []).includes(x))) {
      report(file, text, at("relevantTechniques", i), `technique ${t} needs one of its tactics (${tactics.join(", ")}) in tactics`);
    }
  });
  if (meta.requiredDataConnectors != null && !Array.isArray(meta.requiredDataConnectors)) {
    report(file, text, at("requiredDataConnectors"), "requiredDataConnectors must be a list");
  }
  (Array.isArray(meta.requiredDataConnectors) ? meta.requiredDataConnectors : []).forEach((c, i) => {
    if (!Array.isArray(c?.dataTypes) || !c.dataTypes.length) report(file, text, at("requiredDataConnectors", i), "a required data connector needs dataTypes");
  });
  // Entity mappings: known types and identifiers, one required set, columns the query returns.
  const mappings = meta.entityMappings ?? [];
  if (meta.entityMappings != null && (!Array.isArray(mappings) || mappings.length < 1 || mappings.length > 10)) {
    report(file, text, at("entityMappings"), `entityMappings must list 1 to 10 mappings`);
  }
  (Array.isArray(mappings) ? mappings : []).forEach((m, i) => {
    const node = at("entityMappings", i);
    const spec = ENTITIES[m?.entityType];
    const fields = m?.fieldMappings ?? [];
    if (!spec) report(file, text, node, `unknown entity type ${m?.entityType}`);
    if (!Array.isArray(fields) || fields.length < 1 || fields.length > 3) {
      report(file, text, node, `entity ${m?.entityType} needs 1 to 3 field mappings`);
    }
    const ids = (Array.isArray(fields) ? fields : []).map((f) => f?.identifier);
    (Array.isArray(fields) ? fields : []).forEach((f, j) => {
      const fnode = at("entityMappings", i, "fieldMappings", j);
      if (spec && !spec[0].includes(f?.identifier)) report(file, text, fnode, `entity ${m.entityType} has no identifier ${f?.identifier}`);
      if (ids.indexOf(f?.identifier) !== j) report(file, text, fnode, `entity ${m?.entityType} maps ${f?.identifier} twice`);
      if (!COLUMN.test(String(f?.columnName ?? "")) || !returned(f.columnName)) {
        report(file, text, fnode, `entity ${m?.entityType}.${f?.identifier} maps ${f?.columnName}, which the query does not return`);
      }
    });
    if (spec && !spec[1].some((set) => set.every((id) => ids.includes(id)))) {
      report(file, text, node, `entity ${m.entityType} needs one of the identifier sets ${spec[1].map((s) => s.join("+")).join(", ")}`);
    }
  });
  // Old-style custom entity columns must be mapped (NewEntityMappingsAttribute).
  for (const old of ["AccountCustomEntity", "HostCustomEntity", "IPCustomEntity", "URLCustomEntity", "ProcessCustomEntity", "FileHashCustomEntity"]) {
    if (q.value.includes(old) && !(Array.isArray(mappings) ? mappings : []).some((m) => (m?.fieldMappings ?? []).some((f) => f?.columnName === old))) {
      report(file, text, at("entityMappings") ?? q, `the query sets ${old}, which no entity mapping uses`);
    }
  }
  if (meta.version != null && !(String(meta.version).length <= 20 && /^\d+\.\d+\.\d+$/.test(String(meta.version)))) {
    report(file, text, at("version"), `version must look like 1.0.0: ${meta.version}`);
  }
  return { doc, text, meta, at, returned, query: q.value };
}

function checkHunting(globals, file) {
  checkQueryDocument(globals, file, ["id", "name", "description", "requiredDataConnectors", "tactics", "relevantTechniques", "entityMappings"]);
}

/** A `5m` / `1h` / `14d` period, or a .NET TimeSpan `[d.]hh:mm[:ss]`, in seconds; null if neither. */
function seconds(value) {
  if (typeof value !== "string") return null;
  let m = /^(\d+)([mhd])$/.exec(value);
  if (m) return Number(m[1]) * { m: 60, h: 3600, d: 86400 }[m[2]];
  m = /^(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (m && Number(m[2]) < 24 && Number(m[3]) < 60 && Number(m[4] ?? 0) < 60) {
    return Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4] ?? 0);
  }
  return null;
}

const SEVERITIES = ["Informational", "Low", "Medium", "High"];
const OPERATORS = ["gt", "lt", "eq", "ne", "GreaterThan", "LessThan", "Equal", "NotEqual"];
const ISO_DURATION = /^P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$/;
const placeholders = (s) => [...String(s).matchAll(/{{([^{}]*)}}/g)].map((m) => m[1]);

/**
 * A scheduled analytic rule, with the rules of Sentinel's detection-template CI
 * (.script/tests/detectionTemplateSchemaValidation): required keys, severity, query length,
 * queryFrequency / queryPeriod format and range (5m..14d, period >= frequency, frequency >= 1h
 * once the period reaches 2d), trigger operator and threshold, entity mappings (above), custom
 * details, alert details override, event grouping and version; incidentConfiguration's shape
 * (the ARM API's, which the CI does not check); and a `let query_frequency` equal to queryFrequency.
 */
function checkRule(globals, file) {
  const r = checkQueryDocument(globals, file, ["id", "name", "description", "kind", "severity", "requiredDataConnectors",
    "queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold", "query"]);
  if (!r) return;
  const { text, meta, at, returned, query } = r;
  const bad = (node, message) => report(file, text, node, message);
  if (meta.kind != null && String(meta.kind).toLowerCase() !== "scheduled") bad(at("kind"), `kind ${meta.kind}: only Scheduled rules are checked`);
  if (typeof meta.name !== "string" || !meta.name || meta.name.length > 256) bad(at("name"), "name must be 1 to 256 characters");
  if (typeof meta.description !== "string" || !meta.description.trim() || meta.description.length > 5000) {
    bad(at("description"), "description must be 1 to 5000 characters");
  }
  if (meta.severity != null && !SEVERITIES.includes(meta.severity)) bad(at("severity"), `severity ${meta.severity} is not one of ${SEVERITIES.join(", ")}`);
  if (!query.length || query.length > 10000) bad(at("query"), `the query has ${query.length} characters; at most 10000`);
  const freq = seconds(meta.queryFrequency), period = seconds(meta.queryPeriod);
  for (const [key, v] of [["queryFrequency", freq], ["queryPeriod", period]]) {
    if (meta[key] == null) continue;
    if (v == null) bad(at(key), `${key} ${meta[key]}: expected <number>m, h or d (e.g. 1h, 14d)`);
    else if (v < 300 || v > 14 * 86400) bad(at(key), `${key} ${meta[key]} is outside 5m..14d`);
  }
  if (freq != null && period != null) {
    if (period < freq) bad(at("queryPeriod"), `queryPeriod ${meta.queryPeriod} is shorter than queryFrequency ${meta.queryFrequency}`);
    if (period >= 2 * 86400 && freq < 3600) bad(at("queryFrequency"), `queryPeriod ${meta.queryPeriod} is 2d or more, so queryFrequency must be 1h or more`);
  }
  // A query that names its schedule (`let query_frequency = 1h;`) must name the rule's.
  const declared = /^\s*let\s+query_frequency\s*=\s*(\d+)([mhd])\s*;/m.exec(query);
  if (declared && freq != null && seconds(declared[1] + declared[2]) !== freq) {
    bad(at("query"), `the query's query_frequency ${declared[1]}${declared[2]} differs from queryFrequency ${meta.queryFrequency}`);
  }
  if (meta.triggerOperator != null && !OPERATORS.includes(meta.triggerOperator)) bad(at("triggerOperator"), `triggerOperator ${meta.triggerOperator} is not one of ${OPERATORS.join(", ")}`);
  if (meta.triggerThreshold != null && !(Number.isInteger(meta.triggerThreshold) && meta.triggerThreshold >= 0 && meta.triggerThreshold <= 10000)) {
    bad(at("triggerThreshold"), `triggerThreshold ${meta.triggerThreshold} must be an integer 0..10000`);
  }
  const details = meta.customDetails ?? {};
  if (typeof details !== "object" || Array.isArray(details)) bad(at("customDetails"), "customDetails must map keys to columns");
  else {
    if (Object.keys(details).length > 20) bad(at("customDetails"), "at most 20 customDetails");
    for (const [key, col] of Object.entries(details)) {
      const node = at("customDetails", key);
      if (!/^[a-zA-Z]+\w*$/.test(key) || key.length > 20) bad(node, `custom detail key ${key} must be a letter then letters, digits or _, at most 20`);
      if (!COLUMN.test(String(col)) || String(col).length > 500 || !returned(col)) bad(node, `custom detail ${key} names ${col}, which the query does not return`);
    }
  }
  const o = meta.alertDetailsOverride;
  if (o != null) {
    for (const [key, max] of [["alertDisplayNameFormat", 256], ["alertDescriptionFormat", 5000]]) {
      if (o[key] == null) continue;
      const s = String(o[key]);
      if (!s.trim() || s.length > max) bad(at("alertDetailsOverride", key), `${key} must be 1 to ${max} characters`);
      const names = placeholders(s);
      if (names.length > 3) bad(at("alertDetailsOverride", key), `${key} has ${names.length} {{placeholders}}; at most 3`);
      for (const n of names) if (!returned(n)) bad(at("alertDetailsOverride", key), `${key} uses {{${n}}}, which the query does not return`);
    }
    for (const key of ["alertSeverityColumnName", "alertTacticsColumnName"]) {
      if (o[key] && !returned(o[key])) bad(at("alertDetailsOverride", key), `${key} names ${o[key]}, which the query does not return`);
    }
  }
  const g = meta.eventGroupingSettings;
  if (g != null && !["SingleAlert", "AlertPerResult"].includes(g.aggregationKind)) {
    bad(at("eventGroupingSettings"), `eventGroupingSettings.aggregationKind must be SingleAlert or AlertPerResult`);
  }
  const ic = meta.incidentConfiguration;
  if (ic != null) {
    if (typeof ic.createIncident !== "boolean") bad(at("incidentConfiguration"), "incidentConfiguration.createIncident must be true or false");
    const gc = ic.groupingConfiguration;
    if (gc != null) {
      const node = at("incidentConfiguration", "groupingConfiguration");
      for (const key of ["enabled", "reopenClosedIncident"]) if (typeof gc[key] !== "boolean") bad(node, `groupingConfiguration.${key} must be true or false`);
      if (!ISO_DURATION.test(String(gc.lookbackDuration))) bad(node, `groupingConfiguration.lookbackDuration ${gc.lookbackDuration}: expected an ISO 8601 duration such as PT5H`);
      if (!["AllEntities", "AnyAlert", "Selected"].includes(gc.matchingMethod)) bad(node, `groupingConfiguration.matchingMethod must be AllEntities, AnyAlert or Selected`);
      for (const e of gc.groupByEntities ?? []) if (!ENTITIES[e]) bad(node, `groupByEntities: unknown entity type ${e}`);
      for (const d of gc.groupByAlertDetails ?? []) if (!["DisplayName", "Severity"].includes(d)) bad(node, `groupByAlertDetails: ${d} is not DisplayName or Severity`);
      for (const d of gc.groupByCustomDetails ?? []) if (!(d in details)) bad(node, `groupByCustomDetails: ${d} is not a custom detail`);
      if (gc.matchingMethod === "Selected" && ![gc.groupByEntities, gc.groupByAlertDetails, gc.groupByCustomDetails].some((l) => l?.length)) {
        bad(node, "matchingMethod Selected needs groupByEntities, groupByAlertDetails or groupByCustomDetails");
      }
    }
  }
}

function workbookQueries(node, out) {
  if (Array.isArray(node)) node.forEach((n) => workbookQueries(n, out));
  else if (node && typeof node === "object") {
    if (node.type === 3 && typeof node.content?.query === "string") out.push(node);
    Object.values(node).forEach((n) => workbookQueries(n, out));
  }
  return out;
}

function checkWorkbook(globals, file) {
  const wb = JSON.parse(readFileSync(file, "utf8"));
  for (const item of workbookQueries(wb, [])) {
    const before = problems.length;
    check(globals, item.content.query, file);
    for (let i = before; i < problems.length; i++) problems[i] = problems[i].replace(/^(.+?):(\d+):(\d+):/, `$1 (item ${item.name}, query line $2, col $3):`);
  }
}

/** A data connector page (Data Connectors/*.json): every KQL text it shows or runs. */
function checkDataConnector(globals, file) {
  const c = JSON.parse(readFileSync(file, "utf8"));
  const queries = [
    ...(c.dataTypes ?? []).map((t, i) => [`dataTypes[${i}].lastDataReceivedQuery`, t.lastDataReceivedQuery]),
    ...(c.graphQueries ?? []).map((q, i) => [`graphQueries[${i}].baseQuery`, q.baseQuery]),
    ...(c.sampleQueries ?? []).map((q, i) => [`sampleQueries[${i}].query`, q.query]),
    ...(c.connectivityCriterias ?? []).flatMap((k, i) => (k.value ?? []).map((v, j) => [`connectivityCriterias[${i}].value[${j}]`, v])),
  ];
  if (!queries.length) problems.push(`${shown(file)}: error: a data connector without queries`);
  for (const [where, query] of queries) {
    const before = problems.length;
    check(globals, String(query ?? ""), file);
    for (let i = before; i < problems.length; i++) problems[i] = problems[i].replace(/^(.+?):(\d+):(\d+):/, `$1 (${where}, line $2, col $3):`);
  }
}

function checkDcr(tables, file) {
  const dcr = JSON.parse(readFileSync(file, "utf8"));
  const rule = dcr.resources.find((r) => r.type === "Microsoft.Insights/dataCollectionRules");
  for (const flow of rule.properties.dataFlows) {
    const stream = rule.properties.streamDeclarations[flow.streams[0]];
    const source = tableSymbol("source", stream.columns.map((c) => [c.name, c.type]));
    const globals = K.GlobalState.Default.WithDatabase(new S.DatabaseSymbol.$ctor3("dcr", null, [source], false));
    const before = problems.length;
    const code = check(globals, flow.transformKql, file);
    for (let i = before; i < problems.length; i++) problems[i] = problems[i].replace(/^(.+?):\d+:(\d+):/, `$1 (transformKql of ${flow.streams[0]}, col $2):`);
    // What the transformation produces must be the destination table's columns, typed alike.
    const table = tables.find((t) => `Custom-${t.name}` === flow.outputStream);
    if (!table) {
      problems.push(`${shown(file)}: error: ${flow.outputStream}: no such table in the schema`);
      continue;
    }
    const out = code.ResultType;
    for (const c of toArray(out?.Columns ?? [])) {
      const want = table.columns.find(([n]) => n === c.Name);
      const type = K.Symbols.ScalarTypes.GetSymbol(want?.[1] === "boolean" ? "bool" : want?.[1] ?? "");
      if (!want) problems.push(`${shown(file)}: error: ${flow.outputStream}: the transformation outputs ${c.Name}, which ${table.name} lacks`);
      else if (c.Type !== type) problems.push(`${shown(file)}: error: ${flow.outputStream}: ${c.Name} is ${c.Type.Name}, ${table.name} has ${want[1]}`);
    }
  }
}

/** What a YAML file is, by its keys: a parser, a scheduled rule or a hunting query. */
function yamlKind(file) {
  let doc;
  try {
    doc = YAML.parse(readFileSync(file, "utf8"));
  } catch {
    return "hunting"; // its YAML errors are reported there
  }
  if (doc && typeof doc === "object" && "FunctionQuery" in doc) return "parser";
  if (doc && typeof doc === "object" && ("kind" in doc || "queryFrequency" in doc)) return "rule";
  return "hunting";
}

// ---- main -----------------------------------------------------------------------------------------

const list = (dir, ext) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(ext)).sort().map((f) => join(dir, f)) : [];

const tables = [
  ...schemaTables(join(here, "database-schema.json")),
  ...schemaTables(join(here, "sentinel-tables.json")),
];
const args = process.argv.slice(2).map((a) => resolve(a));
const parserFiles = list(join(content, "Parsers"), ".yaml");
const extraParsers = [
  ...args.filter((f) => f.endsWith(".kql") && existsSync(f)).map(parseKqlParser),
  ...args.filter((f) => /\.ya?ml$/.test(f) && existsSync(f) && !parserFiles.includes(f) && yamlKind(f) === "parser").map(parseYamlParser),
].filter(Boolean);
const parsers = [...parserFiles.map(parseYamlParser).filter(Boolean), ...extraParsers];
const watchlists = list(join(content, "Watchlists"), ".json").map(parseWatchlist);
knownAliases = watchlists.map((w) => w.alias);
const globals = globalsWith(tables, parsers, watchlists);

const targets = args.length
  ? args
  : [
      ...parserFiles,
      ...list(join(content, "Hunting Queries"), ".yaml"),
      ...list(join(content, "Analytic Rules"), ".yaml"),
      ...list(join(content, "Workbooks"), ".json"),
      ...list(join(content, "Data Connectors"), ".json"),
      join(content, "dcr.json"),
    ];
let checked = 0;
for (const file of targets) {
  if (!existsSync(file)) {
    problems.push(`${shown(file)}: error: no such file`);
    continue;
  }
  checked++;
  if (file.endsWith(".kql")) {
    const p = parsers.find((x) => x.file === file);
    if (p) checkParser(globals, p);
    else check(globals, readFileSync(file, "utf8"), file);
  } else if (/\.ya?ml$/.test(file)) {
    const kind = yamlKind(file);
    const p = parsers.find((x) => x.file === file);
    if (kind === "parser" && p) checkParser(globals, p);
    else if (kind === "parser") problems.push(`${shown(file)}:1:1: error: YAML: cannot read FunctionQuery`);
    else if (kind === "rule") checkRule(globals, file);
    else checkHunting(globals, file);
  } else if (basename(file) === "dcr.json") checkDcr(tables, file);
  else if (file.endsWith(".json") && "dataTypes" in JSON.parse(readFileSync(file, "utf8"))) checkDataConnector(globals, file);
  else if (file.endsWith(".json")) checkWorkbook(globals, file);
  else problems.push(`${shown(file)}: error: not a .kql, .yaml or .json file`);
}

for (const p of problems) console.log(p);
console.log(
  `${checked} files checked against ${tables.length} tables, ${parsers.length} functions and ${watchlists.length} watchlists: ${problems.length} problems`,
);
process.exit(problems.length ? 1 : 0);
