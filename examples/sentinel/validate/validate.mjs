// Parses and semantically checks every KQL text of examples/sentinel with the Kusto language
// service (Kusto.Language, as used by Azure Data Explorer and Log Analytics editors):
//   parsers/*.kql            each declares a workspace function (// Function: / // Parameters:)
//   hunting/*.yaml           the `query` of each hunting query
//   workbook.json            every query item
//   ../dcr.json              each data flow's transformKql, against its stream declaration
// against database-schema.json (generated from the plugin's schema by
// `callrecords sentinel-templates`) plus sentinel-tables.json (Microsoft's tables the queries
// join, hand-listed), with the parser functions declared so queries may call them.
//
// Usage: node validate.mjs [FILE...]   (no FILE: everything above)
// Hunting queries: entity mappings must name returned columns; id a GUID; known tactics.
// Prints `file:line:col: severity: message` per diagnostic; exits 1 if there is any.

import { createRequire } from "node:module";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
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

/** A parser file: `// Function: Name` and `// Parameters: a:type = default, ...` header lines. */
function parseParser(file) {
  const text = readFileSync(file, "utf8");
  const name = /^\/\/ Function:\s*(\w+)\s*$/m.exec(text)?.[1];
  const params = /^\/\/ Parameters:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? "";
  if (!name) return null;
  const defaults = [];
  for (const p of params ? splitTopLevel(params) : []) {
    const m = /^\s*(\w+)\s*:\s*(\w+)\s*=\s*(.+?)\s*$/.exec(p);
    if (!m) throw new Error(`${shown(file)}: parameter without a default: ${p}`);
    defaults.push(`let ${m[1]} = ${m[3]};`);
  }
  return { file, name, params, text, prefix: defaults.join("\n") + (defaults.length ? "\n" : "") };
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

function globalsWith(tables, parsers) {
  const members = tables.map((t) => tableSymbol(t.name, t.columns));
  for (const p of parsers) {
    members.push(new S.FunctionSymbol.$ctor16(p.name, `(${p.params})`, `{\n${p.text}\n}`, null));
  }
  const db = new S.DatabaseSymbol.$ctor3("TeamsSentinel", null, members, false);
  return K.GlobalState.Default.WithDatabase(db);
}

// ---- checking -------------------------------------------------------------------------------------

const problems = [];

/** Analyze `text`; report diagnostics at `file`, shifting lines by `lineOffset`. */
function check(globals, text, file, lineOffset = 0, skipChars = 0) {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  for (const d of toArray(code.GetDiagnostics())) {
    const start = Math.max(d.Start - skipChars, 0);
    const before = text.slice(skipChars, skipChars + start).split("\n");
    const line = before.length + lineOffset;
    const col = before[before.length - 1].length + 1;
    problems.push(`${shown(file)}:${line}:${col}: ${String(d.Severity).toLowerCase()}: ${d.Message}`);
  }
  return code;
}

function checkParser(globals, p) {
  check(globals, p.prefix + p.text, p.file, 0, p.prefix.length);
}

function lineOf(text, index) {
  return text.slice(0, index).split("\n").length;
}

function checkHunting(globals, file) {
  const text = readFileSync(file, "utf8");
  const doc = YAML.parseDocument(text);
  if (doc.errors.length) {
    for (const e of doc.errors) problems.push(`${shown(file)}: error: YAML: ${e.message}`);
    return;
  }
  const q = doc.get("query", true);
  if (!q || typeof q.value !== "string") {
    problems.push(`${shown(file)}: error: no query`);
    return;
  }
  // A block scalar's value starts on the line after `query: |`.
  const firstLine = lineOf(text, q.range[0]) + (q.type === "BLOCK_LITERAL" || q.type === "BLOCK_FOLDED" ? 1 : 0);
  const code = check(globals, q.value, file, firstLine - 1);
  for (const key of ["id", "name", "description", "requiredDataConnectors", "tactics", "relevantTechniques", "entityMappings"]) {
    if (!doc.has(key)) problems.push(`${shown(file)}: error: missing ${key}`);
  }
  const meta = doc.toJS();
  if (meta.id && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(String(meta.id))) {
    problems.push(`${shown(file)}: error: id is not a GUID: ${meta.id}`);
  }
  for (const t of meta.tactics ?? []) {
    if (!TACTICS.includes(t)) problems.push(`${shown(file)}: error: unknown tactic ${t}`);
  }
  for (const t of meta.relevantTechniques ?? []) {
    if (!/^T\d{4}(\.\d{3})?$/.test(t)) problems.push(`${shown(file)}: error: not a MITRE technique id: ${t}`);
  }
  // Entity mappings must name columns the query returns.
  const columns = new Set(toArray(code.ResultType?.Columns ?? []).map((c) => c.Name));
  for (const m of meta.entityMappings ?? []) {
    for (const f of m.fieldMappings ?? []) {
      if (!columns.has(f.columnName)) {
        problems.push(`${shown(file)}: error: entity ${m.entityType}.${f.identifier} maps ${f.columnName}, which the query does not return`);
      }
    }
  }
}

// Microsoft Sentinel's tactic names (MITRE ATT&CK enterprise tactics, no spaces).
const TACTICS = [
  "Reconnaissance", "ResourceDevelopment", "InitialAccess", "Execution", "Persistence", "PrivilegeEscalation",
  "DefenseEvasion", "CredentialAccess", "Discovery", "LateralMovement", "Collection", "CommandAndControl",
  "Exfiltration", "Impact", "ImpairProcessControl", "InhibitResponseFunction", "PreAttack",
];

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
    for (let i = before; i < problems.length; i++) problems[i] = problems[i].replace(/^([^:]+):(\d+):(\d+):/, `$1 (item ${item.name}, query line $2, col $3):`);
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
    for (let i = before; i < problems.length; i++) problems[i] = problems[i].replace(/^([^:]+):\d+:(\d+):/, `$1 (transformKql of ${flow.streams[0]}, col $2):`);
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

// ---- main -----------------------------------------------------------------------------------------

const list = (dir, ext) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(ext)).sort().map((f) => join(dir, f)) : [];

const tables = [
  ...schemaTables(join(here, "database-schema.json")),
  ...schemaTables(join(here, "sentinel-tables.json")),
];
const parserFiles = list(join(content, "parsers"), ".kql");
const args = process.argv.slice(2).map((a) => resolve(a));
const extraParsers = args.filter((f) => f.endsWith(".kql")).map(parseParser).filter(Boolean);
const parsers = [...parserFiles.map(parseParser).filter(Boolean), ...extraParsers];
const globals = globalsWith(tables, parsers);

const targets = args.length
  ? args
  : [...parserFiles, ...list(join(content, "hunting"), ".yaml"), join(content, "workbook.json"), join(content, "dcr.json")];
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
  } else if (file.endsWith(".yaml") || file.endsWith(".yml")) checkHunting(globals, file);
  else if (file.endsWith("dcr.json")) checkDcr(tables, file);
  else if (file.endsWith(".json")) checkWorkbook(globals, file);
  else problems.push(`${shown(file)}: error: not a .kql, .yaml or .json file`);
}

for (const p of problems) console.log(p);
console.log(`${checked} files checked against ${tables.length} tables and ${parsers.length} functions: ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
