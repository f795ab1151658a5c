// After the first referral: a second one that the owner rejects, the hub re-routes and
// the referrer cancels; a batch; a conditional update; what generic clients send; the
// hub's canonicals; the statistics; error paths.

import { clone, diagnostics, entries, idOf, matches, party, typeOf } from './harness.mjs';
import { BUSINESS_STATUS, OWNER, POSITIVE_HEALTH } from './referral.mjs';

export async function moreFlows(run, ctx) {
  const c = run.client;
  const { fixture } = ctx;
  let r;

  // --- A second referral: the owner rejects it at once, the hub re-routes, the GP cancels
  const second = clone(fixture);
  second.entry = second.entry.filter((e) => e.request.url !== 'Consent');
  const srEntry = second.entry.find((e) => e.resource.resourceType === 'ServiceRequest');
  srEntry.resource.identifier[0].value = 'HIS-2026-000124';
  delete srEntry.resource.supportingInfo;
  srEntry.request.ifNoneExist = `identifier=${srEntry.resource.identifier[0].system}|HIS-2026-000124`;
  r = await run.call('GP submits a second referral', () => c.transaction({ body: second }));
  run.status(r, 200);
  const sr2 = idOf(entries(r.body).map((e) => e.response?.location).find((l) => typeOf(l) === 'ServiceRequest'));

  r = await run.call('owner pages its Tasks (_count=1) ...', () => c.search({ resourceType: 'Task', searchParams: { owner: OWNER, _count: 1 }, options: party(OWNER) }));
  run.status(r, 200);
  const hasNext = (r.body?.link ?? []).some((l) => l.relation === 'next');
  if (run.check(r, hasNext, 'no next link with two Tasks and _count=1')) {
    const page1 = r.body;
    r = await run.call('... and follows the next link', () => c.nextPage({ bundle: page1, options: party(OWNER) }));
    run.status(r, 200);
    run.check(r, matches(r.body).length === 1, `${matches(r.body).length} entries on page 2`);
  }

  r = await run.call('owner finds the second Task', () =>
    c.search({ resourceType: 'Task', searchParams: { focus: `ServiceRequest/${sr2}` }, options: party(OWNER) }),
  );
  run.status(r, 200);
  let t2 = matches(r.body)[0]?.resource;
  r = await run.call('owner reads it', () => c.read({ resourceType: 'Task', id: t2?.id ?? 'missing', options: party(OWNER) }));
  t2 = r.body;
  let etag2 = r.headers.get('etag');
  r = await run.call('owner rejects: requested -> rejected (PUT, If-Match)', () =>
    c.update({
      resourceType: 'Task',
      id: t2.id,
      body: { ...clone(t2), status: 'rejected', statusReason: { text: 'Geen plek in de wandelgroep' } },
      options: party(OWNER, { 'If-Match': etag2 }),
    }),
  );
  run.status(r, 200, 1);

  r = await run.call('the re-routed Task (Task?part-of=...)', () =>
    c.search({ resourceType: 'Task', searchParams: { 'part-of': `Task/${t2.id}` }, options: party(ctx.requester) }),
  );
  run.status(r, 200);
  const t3 = matches(r.body)[0]?.resource;
  run.check(r, t3 && t3.status === 'requested', `re-routed Task ${t3?.status ?? 'missing'}`);
  if (t3) {
    r = await run.call('referrer reads the re-routed Task', () => c.read({ resourceType: 'Task', id: t3.id, options: party(ctx.requester) }));
    r = await run.call('referrer cancels: requested -> cancelled (PUT, If-Match)', () =>
      c.update({
        resourceType: 'Task',
        id: t3.id,
        body: { ...clone(r.body), status: 'cancelled', statusReason: { text: 'Patiënt heeft zelf een activiteit gevonden' } },
        options: party(ctx.requester, { 'If-Match': r.headers.get('etag') }),
      }),
    );
    run.status(r, 200);
    r = await run.call('the second ServiceRequest is revoked', () => c.read({ resourceType: 'ServiceRequest', id: sr2, options: party(ctx.requester) }));
    run.check(r, r.body?.status === 'revoked', `ServiceRequest.status ${r.body?.status}, expected revoked`);
  }

  // --- Batch with reads and a search
  r = await run.call('batch: read, vread and search entries', () =>
    c.batch({
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          { request: { method: 'GET', url: `Task/${ctx.task}` } },
          { request: { method: 'GET', url: `Task/${ctx.task}/_history/1` } },
          { request: { method: 'GET', url: `Task?focus=ServiceRequest/${ctx.sr}` } },
        ],
      },
      options: party(ctx.requester),
    }),
  );
  run.status(r, 200);
  entries(r.body).forEach((e, i) => {
    run.check(r, e.response?.status?.startsWith('200'), `batch entry ${i}: ${e.response?.status}${diagnostics(e.response?.outcome)}`, i === 2 ? 9 : undefined);
  });

  // --- The GP system updates the patient by BSN (conditional update at the endpoint)
  const bsn = fixture.entry.find((e) => e.resource.resourceType === 'Patient').resource.identifier[0];
  r = await run.call('GP reads the Patient', () => c.read({ resourceType: 'Patient', id: ctx.patient }));
  const patient = r.body;
  r = await run.call('GP updates the Patient by BSN (PUT Patient?identifier=...)', () =>
    c.update({
      resourceType: 'Patient',
      searchParams: { identifier: `${bsn.system}|${bsn.value}` },
      body: { ...clone(patient), telecom: [{ system: 'phone', value: '0612345679', use: 'mobile' }] },
    }),
  );
  run.status(r, 200, 8);

  // --- What generic clients also send
  r = await run.call('HEAD on a Task', () => c.request(`Task/${ctx.task}`, { method: 'HEAD', options: party(OWNER) }));
  if (run.status(r, 200, 7)) run.check(r, Boolean(r.headers.get('etag')), 'HEAD without ETag', 7);
  r = await run.call('search with _format=json', () => c.search({ resourceType: 'Task', searchParams: { _id: ctx.task, _format: 'json' } }));
  run.status(r, 200, 7);
  r = await run.call('search with _pretty=true', () => c.search({ resourceType: 'Task', searchParams: { _id: ctx.task, _pretty: 'true' } }));
  run.status(r, 200, 7);
  r = await run.call('Accept: application/fhir+json; fhirVersion=4.0', () =>
    c.read({ resourceType: 'Task', id: ctx.task, options: party(OWNER, { Accept: 'application/fhir+json; fhirVersion=4.0' }) }),
  );
  run.status(r, 200, 12);
  r = await run.call('Accept: application/fhir+json; fhirVersion=5.0 (not R4)', () =>
    c.read({ resourceType: 'Task', id: ctx.task, options: party(OWNER, { Accept: 'application/fhir+json; fhirVersion=5.0' }) }),
  );
  run.status(r, 406, 12);

  // --- The canonicals the hub uses resolve on the hub
  r = await run.call('resolve the Positive Health Questionnaire canonical', () =>
    c.search({ resourceType: 'Questionnaire', searchParams: { url: POSITIVE_HEALTH } }),
  );
  if (run.status(r, 200, 11)) {
    run.check(r, matches(r.body).length === 1, `${matches(r.body).length} Questionnaires for ${POSITIVE_HEALTH}`, 11);
  }
  r = await run.call('resolve the business-status CodeSystem canonical', () =>
    c.search({ resourceType: 'CodeSystem', searchParams: { url: BUSINESS_STATUS } }),
  );
  if (run.status(r, 200, 11)) {
    run.check(r, matches(r.body).length === 1, `${matches(r.body).length} CodeSystems for ${BUSINESS_STATUS}`, 11);
  }

  // --- The referral statistics as an R4 MeasureReport (validated like every body)
  r = await run.call('the referral statistics (Measure/referral-statistics/$evaluate-measure)', () =>
    c.request('Measure/referral-statistics/$evaluate-measure?periodStart=2000-01-01&periodEnd=2099-12-31&period=year&by=municipality', { method: 'GET' }),
  );
  if (run.status(r, 200)) {
    run.check(r, r.body?.resourceType === 'MeasureReport' && r.body?.group?.length === 11, `${r.body?.resourceType} with ${r.body?.group?.length} groups`);
  }

  // --- Error paths
  r = await run.call('read of an unknown Task', () => c.read({ resourceType: 'Task', id: 'does-not-exist', options: party(OWNER) }));
  run.status(r, 404);
  r = await run.call('search with an unknown parameter', () => c.search({ resourceType: 'Task', searchParams: { favourite: 'blue' } }));
  run.status(r, 400);
  r = await run.call('create with an empty array ("name": [])', () =>
    c.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [], birthDate: '1990-01-01' } }),
  );
  run.status(r, 400, 6);
}
