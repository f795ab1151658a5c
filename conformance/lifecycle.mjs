#!/usr/bin/env node
// Drives the whole referral lifecycle against the real wor-hub binary, as an integrator
// would, with a third-party FHIR client (fhir-kit-client), and validates every response
// body with independent R4 validators (validate.mjs). Prints every request, the problems
// found (validation errors with their path, protocol problems with the request and the
// issue-11 item they belong to) and a summary; exits 1 on any problem.
//
//   node conformance/lifecycle.mjs [--bin target/debug/wor-hub] [--backend sqlite|postgres]
//                                  [--base http://127.0.0.1:8080/fhir] [--verbose]
//
// Without --base it starts the binary on a free loopback port with a fresh database and
// the sample directory: on SQLite, and on PostgreSQL too when WOR_HUB_TEST_POSTGRES_URL is
// set (a new database is created there and dropped afterwards; needs `psql`).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { moreFlows } from './flows.mjs';
import { options, pgDatabase, report, Run, startServer, stopServer } from './harness.mjs';
import { referral } from './referral.mjs';
import { selfTest } from './selftest.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

const args = parseArgs(process.argv.slice(2));
const BIN = path.resolve(args.bin ?? process.env.WOR_HUB_BIN ?? path.join(ROOT, 'target/debug/wor-hub'));
const FIXTURE = path.resolve(args.fixture ?? path.join(ROOT, 'tests/fixtures/referral-transaction.json'));
options.verbose = Boolean(args.verbose);

async function lifecycle(run) {
  const ctx = await referral(run, FIXTURE);
  await moreFlows(run, ctx);
}

async function onBackend(backend) {
  console.log(`\n== ${backend}`);
  let db;
  let server;
  try {
    if (backend === 'sqlite') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wor-hub-conformance-'));
      db = { url: path.join(dir, 'hub.db'), drop: () => fs.rmSync(dir, { recursive: true, force: true }) };
    } else {
      db = pgDatabase(process.env.WOR_HUB_TEST_POSTGRES_URL);
    }
    server = await startServer(BIN, db.url);
    await lifecycle(new Run(backend, server.base));
  } catch (err) {
    report.protocol.push({ backend, request: '-', label: 'lifecycle aborted', what: String(err?.stack ?? err) });
    console.log(`        ABORTED: ${err?.message ?? err}`);
  } finally {
    stopServer(server);
    await new Promise((r) => setTimeout(r, 200));
    try {
      db?.drop();
    } catch (err) {
      console.log(`  (could not drop the database: ${err.message})`);
    }
  }
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--verbose') out.verbose = true;
    else if (a.startsWith('--')) out[a.slice(2)] = argv[++i];
  }
  return out;
}

async function main() {
  const started = Date.now();
  const broken = selfTest();
  if (broken.length) {
    console.log('The validators failed their self-test (selftest.mjs):');
    for (const b of broken) console.log(`  ${b}`);
    console.log(`\nconformance: 0 passed, ${broken.length} failed`);
    process.exit(1);
  }
  console.log('validators: self-test passed (known-invalid bodies caught, valid ones accepted)');
  if (args.base) {
    console.log(`== ${args.base}`);
    try {
      await lifecycle(new Run('given', args.base));
    } catch (err) {
      report.protocol.push({ backend: 'given', request: '-', label: 'lifecycle aborted', what: String(err?.stack ?? err) });
    }
  } else {
    const backends = args.backend ? [args.backend] : ['sqlite', ...(process.env.WOR_HUB_TEST_POSTGRES_URL ? ['postgres'] : [])];
    if (!process.env.WOR_HUB_TEST_POSTGRES_URL && !args.backend) {
      if (process.env.CI) {
        console.error('CI must set WOR_HUB_TEST_POSTGRES_URL');
        process.exit(2);
      }
      console.log('WOR_HUB_TEST_POSTGRES_URL not set: PostgreSQL not run');
    }
    for (const b of backends) await onBackend(b);
  }

  console.log('\n== Summary');
  console.log(`${report.requests} requests in ${((Date.now() - started) / 1000).toFixed(1)} s; every response body validated (@medplum/core R4 4.0.1, FHIR.js R4, json.html rules)`);
  console.log(`\nValidation errors: ${report.validation.length}`);
  for (const v of report.validation) {
    console.log(`  [${v.backend}] ${v.request} (${v.label})\n      ${v.path}: ${v.message}${v.item ? `  -> issue 11 item ${v.item}` : ''}`);
  }
  console.log(`\nProtocol problems: ${report.protocol.length}`);
  for (const p of report.protocol) {
    console.log(`  [${p.backend}] ${p.request} (${p.label})\n      ${p.what}${p.item ? `  -> issue 11 item ${p.item}` : ''}`);
  }
  const items = new Map();
  for (const x of [...report.validation, ...report.protocol]) {
    const k = x.item ?? 'other';
    items.set(k, (items.get(k) ?? 0) + 1);
  }
  if (items.size) {
    const list = [...items.entries()].sort((a, b) => (a[0] === 'other') - (b[0] === 'other') || a[0] - b[0]);
    console.log(`\nBy issue 11 item: ${list.map(([k, n]) => `${k === 'other' ? 'no item' : `#${k}`}: ${n}`).join(', ')}`);
  }
  const failed = report.validation.length + report.protocol.length;
  console.log(`\nconformance: ${report.checksPassed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main();
