// The first referral, from the GP system's transaction to the completed Task the
// referrer reads back, with the workflow's error paths, $validate and the searches
// integrators use. Returns what later steps need (ids).

import fs from 'node:fs';
import { CapabilityTool } from 'fhir-kit-client';
import { clone, coding, entries, hasSubsetted, idOf, matches, party, typeOf } from './harness.mjs';

// Codes and canonicals of the hub (README: Referral workflow, Outcome and feedback).
export const BUSINESS_STATUS = 'https://wor-hub.nl/fhir/CodeSystem/task-business-status';
export const OUTPUT_TYPE = 'https://wor-hub.nl/fhir/CodeSystem/task-output-type';
export const POSITIVE_HEALTH = 'https://wor-hub.nl/fhir/Questionnaire/positive-health';
export const OWNER = 'Organization/tom-in-de-buurt'; // the sample directory's choice for the fixture
export const OTHER_ORG = 'Organization/go-voor-jeugd';
export const DIMENSIONS = [
  'bodily-functions',
  'mental-wellbeing',
  'meaningfulness',
  'quality-of-life',
  'participation',
  'daily-functioning',
];

export async function referral(run, fixturePath) {
  const c = run.client;
  const ctx = {};

  // --- What the server says it implements
  let r = await run.call('capabilities', () => c.capabilityStatement());
  if (run.status(r, 200)) {
    run.check(r, r.body.fhirVersion === '4.0.1', `fhirVersion ${r.body.fhirVersion}, expected 4.0.1`);
    const tool = new CapabilityTool(r.body);
    run.check(r, tool.resourceCan('Task', 'patch'), 'CapabilityStatement does not list patch for Task', 4);
    run.check(r, tool.resourceCan('Task', 'update') && tool.resourceCan('Task', 'search-type'), 'Task update/search-type not listed');
    const patient = tool.resourceCapabilities({ resourceType: 'Patient' });
    run.check(r, patient?.conditionalUpdate === true, 'Patient.conditionalUpdate not claimed', 8);
  }

  // --- The GP system submits the referral as one transaction
  const fixture = JSON.parse(fs.readFileSync(fixturePath, 'utf8'));
  const requestId = `conformance-${run.backend}-${Date.now()}`;
  r = await run.call('GP submits the referral (transaction, X-Request-Id)', () =>
    c.transaction({ body: fixture, options: { headers: { 'X-Request-Id': requestId } } }),
  );
  if (!run.status(r, 200)) throw new Error('the referral transaction failed; nothing else to drive');
  run.check(r, r.body.type === 'transaction-response', `Bundle.type ${r.body.type}`);
  const first = r.body;
  const created = {};
  entries(first).forEach((e, i) => {
    const loc = e.response?.location;
    run.check(r, e.response?.status?.startsWith('201'), `entry ${i}: status ${e.response?.status}, expected 201`);
    run.check(r, /^W\/"\d+"$/.test(e.response?.etag ?? ''), `entry ${i}: etag ${e.response?.etag}`);
    if (loc) created[typeOf(loc)] = idOf(loc);
  });
  ctx.patient = created.Patient;
  ctx.practitioner = created.Practitioner;
  ctx.sr = created.ServiceRequest;
  ctx.requester = `Practitioner/${ctx.practitioner}`;

  r = await run.call('GP retries with the same X-Request-Id (replay)', () =>
    c.transaction({ body: fixture, options: { headers: { 'X-Request-Id': requestId } } }),
  );
  run.status(r, 200);
  run.check(r, JSON.stringify(r.body) === JSON.stringify(first), 'replay answered differently from the original');

  r = await run.call('GP resubmits without X-Request-Id (conditional creates)', () => c.transaction({ body: fixture }));
  if (run.status(r, 200)) {
    entries(r.body).forEach((e, i) => {
      const req = fixture.entry[i].request;
      if (req.ifNoneExist) {
        run.check(r, e.response?.status?.startsWith('200'), `entry ${i} (${req.url}, ifNoneExist): status ${e.response?.status}, expected 200`);
      }
    });
  }
  r = await run.call('no second Consent after the resubmission', () =>
    c.search({ resourceType: 'Consent', searchParams: { patient: `Patient/${ctx.patient}`, _total: 'accurate' } }),
  );
  run.status(r, 200);
  run.check(r, r.body?.total === 1, `${r.body?.total} Consents for the patient, expected 1: resubmitting the sample referral duplicated its Consent`, 22);

  // --- The welfare organisation finds its new Task
  r = await run.call('owner finds its new Tasks (Task?owner=...&status=requested)', () =>
    c.search({ resourceType: 'Task', searchParams: { owner: OWNER, status: 'requested' }, options: party(OWNER) }),
  );
  run.status(r, 200);
  const routed = matches(r.body).map((e) => e.resource);
  run.check(r, routed.length === 1, `${routed.length} requested Tasks for ${OWNER}, expected 1`);
  const task0 = routed.find((t) => t.focus?.reference === `ServiceRequest/${ctx.sr}`);
  if (!run.check(r, task0, 'no Task focused on the referral')) throw new Error('no routed Task');
  ctx.task = task0.id;
  run.check(r, task0.status === 'requested' && task0.intent === 'order', `routed Task ${task0.status}/${task0.intent}`);
  run.check(r, task0.requester?.reference === ctx.requester, `Task.requester ${task0.requester?.reference}, expected ${ctx.requester}`);

  r = await run.call('owner reads the Task (ETag)', () => c.read({ resourceType: 'Task', id: ctx.task, options: party(OWNER) }));
  run.status(r, 200);
  let task = r.body;
  let etag = r.headers.get('etag');
  const etagV1 = etag;
  run.check(r, etag === `W/"${task.meta?.versionId}"`, `ETag ${etag}, meta.versionId ${task.meta?.versionId}`);
  run.check(r, Boolean(r.headers.get('last-modified')), 'no Last-Modified header');

  // --- Owner accepts straight from requested (R4 task state machine; Gravity has no `received`)
  r = await run.call('owner accepts: requested -> accepted (PUT, If-Match)', () =>
    c.update({
      resourceType: 'Task',
      id: ctx.task,
      body: { ...clone(task), status: 'accepted', businessStatus: coding(BUSINESS_STATUS, 'contact-made') },
      options: party(OWNER, { 'If-Match': etag }),
    }),
  );
  run.status(r, 200, 1);
  task = r.body;
  etag = r.headers.get('etag');
  run.check(r, task?.status === 'accepted', `Task.status ${task?.status} after accepting`);
  run.check(r, etag === `W/"${task?.meta?.versionId}"`, `ETag ${etag} after the update, meta.versionId ${task?.meta?.versionId}`);

  r = await run.call('stale If-Match is refused', () =>
    c.update({ resourceType: 'Task', id: ctx.task, body: { ...clone(task), note: [{ text: 'late' }] }, options: party(OWNER, { 'If-Match': etagV1 }) }),
  );
  run.status(r, 412);

  r = await run.call('another organisation may not change the Task', () =>
    c.update({ resourceType: 'Task', id: ctx.task, body: { ...clone(task), status: 'in-progress' }, options: party(OTHER_ORG, { 'If-Match': etag }) }),
  );
  run.status(r, 403);

  r = await run.call('illegal transition accepted -> completed is a business rule', () =>
    c.update({ resourceType: 'Task', id: ctx.task, body: { ...clone(task), status: 'completed' }, options: party(OWNER, { 'If-Match': etag }) }),
  );
  run.status(r, 422, 2);
  run.check(r, (r.body?.issue ?? []).some((i) => i.code === 'business-rule'), `issue code ${(r.body?.issue ?? []).map((i) => i.code)}, expected business-rule`, 2);
  run.check(r, (r.body?.issue ?? []).some((i) => (i.expression ?? []).includes('Task.status')), 'no issue at Task.status');
  r = await run.call('nothing was stored by the refusals', () => c.read({ resourceType: 'Task', id: ctx.task, options: party(OWNER) }));
  run.check(r, r.headers.get('etag') === etag, `ETag ${r.headers.get('etag')} after refused updates, expected ${etag}`);

  // --- Owner starts the activity with a JSON Patch (no need to send back the routing extension)
  const patch = [
    { op: 'test', path: '/status', value: 'accepted' },
    { op: 'replace', path: '/status', value: 'in-progress' },
    { op: 'add', path: '/businessStatus', value: coding(BUSINESS_STATUS, 'intake-planned') },
  ];
  r = await run.call('owner starts: accepted -> in-progress (PATCH json-patch, If-Match)', () =>
    c.patch({ resourceType: 'Task', id: ctx.task, jsonPatch: patch, options: party(OWNER, { 'If-Match': etag }) }),
  );
  run.status(r, 200, 4);
  run.check(r, r.body?.status === 'in-progress', `Task.status ${r.body?.status} after PATCH`, 4);
  run.check(r, r.body?.extension?.length === task.extension?.length, 'PATCH lost the routing extension', 4);
  task = r.body;
  etag = r.headers.get('etag');

  r = await run.call('PATCH with a stale If-Match is refused', () =>
    c.patch({ resourceType: 'Task', id: ctx.task, jsonPatch: [{ op: 'add', path: '/note', value: [{ text: 'x' }] }], options: party(OWNER, { 'If-Match': etagV1 }) }),
  );
  run.status(r, 412, 4);

  // --- Outcome: two Positive Health questionnaires and the feedback
  const qr = (scores, authored) => ({
    resourceType: 'QuestionnaireResponse',
    questionnaire: POSITIVE_HEALTH,
    status: 'completed',
    subject: { reference: `Patient/${ctx.patient}` },
    basedOn: [{ reference: `ServiceRequest/${ctx.sr}` }],
    authored,
    item: DIMENSIONS.map((linkId, i) => ({ linkId, answer: [{ valueInteger: scores[i] }] })),
  });
  const outputs = {};
  for (const [name, scores, authored] of [
    ['intake', [4, 3, 5, 4, 0, 5], '2026-11-24T10:00:00+01:00'],
    ['closing', [6, 7, 7, 8, 7, 8], '2027-02-16T10:00:00+01:00'],
  ]) {
    r = await run.call(`owner records the ${name} Positive Health (POST)`, () =>
      c.create({ resourceType: 'QuestionnaireResponse', body: qr(scores, authored), options: party(OWNER) }),
    );
    run.status(r, 201);
    run.check(r, Boolean(r.headers.get('location')), 'no Location header');
    run.check(r, r.headers.get('etag') === 'W/"1"', `ETag ${r.headers.get('etag')} on create`);
    outputs[name] = r.body?.id;
  }

  r = await run.call('owner completes with outputs: in-progress -> completed (PUT, If-Match)', () =>
    c.update({
      resourceType: 'Task',
      id: ctx.task,
      body: {
        ...clone(task),
        status: 'completed',
        businessStatus: coding(BUSINESS_STATUS, 'closed-goal-reached'),
        output: [
          { type: coding(OUTPUT_TYPE, 'feedback'), valueString: 'Mevrouw doet mee aan de wandelgroep.' },
          { type: coding(OUTPUT_TYPE, 'positive-health-intake'), valueReference: { reference: `QuestionnaireResponse/${outputs.intake}` } },
          { type: coding(OUTPUT_TYPE, 'positive-health-closing'), valueReference: { reference: `QuestionnaireResponse/${outputs.closing}` } },
        ],
      },
      options: party(OWNER, { 'If-Match': etag }),
    }),
  );
  run.status(r, 200);
  task = r.body;
  etag = r.headers.get('etag');

  r = await run.call('a closed Task changes status no more (completed -> in-progress)', () =>
    c.update({ resourceType: 'Task', id: ctx.task, body: { ...clone(task), status: 'in-progress' }, options: party(OWNER, { 'If-Match': etag }) }),
  );
  run.status(r, 422, 2);

  // --- The referrer follows the referral
  r = await run.call('referrer reads the ServiceRequest (follows the Task)', () =>
    c.read({ resourceType: 'ServiceRequest', id: ctx.sr, options: party(ctx.requester) }),
  );
  run.status(r, 200);
  run.check(r, r.body?.status === 'completed', `ServiceRequest.status ${r.body?.status}, expected completed`);

  r = await run.call('referrer reads the Task with _include=Task:output and Task:owner', () =>
    c.search({
      resourceType: 'Task',
      searchParams: { focus: `ServiceRequest/${ctx.sr}`, _include: ['Task:output', 'Task:owner'] },
      options: party(ctx.requester),
    }),
  );
  run.status(r, 200);
  const included = entries(r.body).filter((e) => e.search?.mode === 'include').map((e) => e.resource?.resourceType);
  run.check(r, matches(r.body).length === 1, `${matches(r.body).length} matches, expected 1`);
  run.check(r, included.filter((t) => t === 'QuestionnaireResponse').length === 2 && included.includes('Organization'), `included ${included}`);

  r = await run.call('Task history', () => c.history({ resourceType: 'Task', id: ctx.task, options: party(ctx.requester) }));
  run.status(r, 200);
  run.check(r, r.body?.type === 'history', `Bundle.type ${r.body?.type}`);
  run.check(r, entries(r.body).length === Number(task?.meta?.versionId), `${entries(r.body).length} history entries, current version ${task?.meta?.versionId}`);
  r = await run.call('vread of the first version', () => c.vread({ resourceType: 'Task', id: ctx.task, version: '1', options: party(ctx.requester) }));
  run.status(r, 200);
  run.check(r, r.body?.status === 'requested', `version 1 status ${r.body?.status}`);
  r = await run.call('type history', () => c.history({ resourceType: 'Task', options: party(ctx.requester) }));
  run.status(r, 200);

  // --- $validate
  r = await run.call('$validate the Task (type level)', () => c.operation({ resourceType: 'Task', name: '$validate', input: clone(task) }));
  run.status(r, 200);
  r = await run.call('$validate the Task (instance level, mode=update)', () =>
    c.operation({
      resourceType: 'Task',
      id: ctx.task,
      name: '$validate',
      input: {
        resourceType: 'Parameters',
        parameter: [
          { name: 'resource', resource: { ...clone(task), note: [{ text: 'checked' }] } },
          { name: 'mode', valueCode: 'update' },
        ],
      },
      options: party(OWNER),
    }),
  );
  run.status(r, 200, 10);
  r = await run.call('$validate a ServiceRequest whose subject does not exist', () =>
    c.operation({
      resourceType: 'ServiceRequest',
      name: '$validate',
      input: { resourceType: 'ServiceRequest', status: 'active', intent: 'order', subject: { reference: 'Patient/does-not-exist' } },
    }),
  );
  run.check(r, (r.body?.issue ?? []).some((i) => i.severity === 'error'), `no error issue (status ${r.status}): the reference rule of a write is not run`, 10);

  // --- Searches integrators use
  r = await run.call('Task?_summary=true', () => c.search({ resourceType: 'Task', searchParams: { _summary: 'true' } }));
  if (run.status(r, 200, 5)) {
    const ts = matches(r.body).map((e) => e.resource);
    run.check(r, ts.length > 0 && ts.every(hasSubsetted), 'entries without the SUBSETTED tag', 5);
    run.check(r, ts.every((t) => t.status && t.intent), 'summary lost Task.status or Task.intent', 5);
  }
  r = await run.call('Task?_elements=status,businessStatus', () =>
    c.search({ resourceType: 'Task', searchParams: { _elements: 'status,businessStatus', owner: OWNER } }),
  );
  if (run.status(r, 200)) {
    const ts = matches(r.body).map((e) => e.resource);
    run.check(r, ts.length > 0 && ts.every(hasSubsetted), 'entries without the SUBSETTED tag', 5);
    run.check(r, ts.every((t) => t.status && t.intent && !t.focus), '_elements did not keep status+intent or kept focus', 5);
  }
  r = await run.call('Task?_summary=count', () => c.search({ resourceType: 'Task', searchParams: { _summary: 'count' } }));
  run.status(r, 200);
  run.check(r, typeof r.body?.total === 'number' && !r.body?.entry?.length, 'not a count-only answer');
  r = await run.call('Task?_count=0 (count only)', () => c.search({ resourceType: 'Task', searchParams: { _count: 0 } }));
  if (run.status(r, 200, 7)) {
    run.check(r, typeof r.body?.total === 'number' && !r.body?.entry?.length, 'not a count-only answer', 7);
  }
  r = await run.call('Task read with _elements=status', () =>
    c.request(`Task/${ctx.task}?_elements=status`, { options: party(OWNER) }),
  );
  if (run.status(r, 200, 5)) {
    run.check(r, hasSubsetted(r.body) && r.body?.status && r.body?.intent && !r.body?.focus, '_elements on read not applied (SUBSETTED, status+intent only)', 5);
  }
  r = await run.call('Task read with _summary=true', () => c.request(`Task/${ctx.task}?_summary=true`, { options: party(OWNER) }));
  if (run.status(r, 200, 5)) run.check(r, hasSubsetted(r.body), '_summary on read not applied (no SUBSETTED tag)', 5);
  r = await run.call('search that finds nothing', () => c.search({ resourceType: 'Task', searchParams: { _id: 'does-not-exist' } }));
  run.status(r, 200);
  run.check(r, r.body?.total === 0 || r.body?.total === undefined, `total ${r.body?.total}`);
  r = await run.call('POST Task/_search', () =>
    c.search({ resourceType: 'Task', searchParams: { owner: OWNER }, options: { ...party(OWNER), postSearch: true } }),
  );
  run.status(r, 200);
  return { ...ctx, fixture };
}
