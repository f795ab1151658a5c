// The validators must catch what they are trusted to catch, and accept valid R4: a check
// run before the lifecycle, so that an upgrade of a validator package that silently stops
// reporting (or starts reporting valid JSON) fails the run instead of passing it.

import { validateBody } from './validate.mjs';

const task = { resourceType: 'Task', id: 'a-1', status: 'requested', intent: 'order' };

const VALID = {
  'minimal Task': task,
  'Positive Health score 0 (falsy value[x])': {
    resourceType: 'QuestionnaireResponse',
    status: 'completed',
    item: [{ linkId: 'participation', answer: [{ valueInteger: 0 }] }],
  },
  'CodeSystem property valueBoolean false': {
    resourceType: 'CodeSystem',
    status: 'active',
    content: 'complete',
    property: [{ code: 'p', type: 'boolean' }],
    concept: [{ code: 'c', property: [{ code: 'p', valueBoolean: false }] }],
  },
  'searchset with a nested Task and an OperationOutcome': {
    resourceType: 'Bundle',
    type: 'searchset',
    total: 1,
    entry: [
      { fullUrl: 'http://h/fhir/Task/a-1', resource: task, search: { mode: 'match' } },
      {
        resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'warning', code: 'processing' }] },
        search: { mode: 'outcome' },
      },
    ],
  },
  'primitive extension array with null': {
    resourceType: 'Patient',
    name: [{ given: ['A', 'B'], _given: [null, { extension: [{ url: 'http://x', valueString: 'y' }] }] }],
  },
};

// Each invalid body and a path that must be reported.
const INVALID = [
  ['missing required element', { resourceType: 'Task', status: 'requested' }, 'Task.intent'],
  ['code outside a required value set', { ...task, status: 'done' }, 'Task.status'],
  ['empty array', { ...task, note: [] }, 'Task.note'],
  ['empty object', { ...task, code: {} }, 'Task.code'],
  ['null', { ...task, description: null }, 'Task.description'],
  ['unknown element', { ...task, favourite: 'blue' }, 'Task.favourite'],
  ['array for a single element', { ...task, code: [{ text: 'x' }] }, 'Task.code'],
  ['single value for an array', { ...task, note: { text: 'x' } }, 'Task.note'],
  ['invalid dateTime', { ...task, authoredOn: '2026-13-45' }, 'Task.authoredOn'],
  ['invalid instant', { ...task, meta: { lastUpdated: 'yesterday' } }, 'Task.meta.lastUpdated'],
  ['string for a number', { resourceType: 'Bundle', type: 'searchset', total: '3' }, 'Bundle.total'],
  ['invalid id', { ...task, id: 'a b' }, 'Task.id'],
  ['Meta element not in R4', { ...task, meta: { project: 'x' } }, 'Task.meta.project'],
  ['empty string', { ...task, description: '' }, 'Task.description'],
  [
    'required choice without value[x]',
    {
      resourceType: 'CodeSystem',
      status: 'active',
      content: 'complete',
      concept: [{ code: 'c', property: [{ code: 'p' }] }],
    },
    'CodeSystem.concept[0].property[0].value[x]',
  ],
  [
    'nested resource in a Bundle',
    { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: { resourceType: 'Task', status: 'requested' } }] },
    'Bundle.entry[0].resource.intent',
  ],
  [
    'nested OperationOutcome in a transaction-response',
    {
      resourceType: 'Bundle',
      type: 'transaction-response',
      entry: [{ response: { status: '400', outcome: { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'nope' }] } } }],
    },
    'Bundle.entry[0].response.outcome.issue[0].code',
  ],
  ['transaction-response entry without response (bdl-4)', { resourceType: 'Bundle', type: 'transaction-response', entry: [{ resource: task }] }, 'Bundle'],
  ['OperationOutcome without issue', { resourceType: 'OperationOutcome' }, 'OperationOutcome.issue'],
];

/** Returns the list of self-test failures (empty: the validators work). */
export function selfTest() {
  const failures = [];
  for (const [name, body] of Object.entries(VALID)) {
    const problems = validateBody(body);
    if (problems.length) {
      failures.push(`valid body refused (${name}): ${problems.map((p) => `${p.path}: ${p.message} [${p.validator}]`).join('; ')}`);
    }
  }
  for (const [name, body, path] of INVALID) {
    const problems = validateBody(body);
    if (!problems.some((p) => p.path === path || p.path.startsWith(`${path}.`) || p.path.startsWith(`${path}[`))) {
      failures.push(`not caught (${name}): expected a problem at ${path}, got ${JSON.stringify(problems)}`);
    }
  }
  return failures;
}
