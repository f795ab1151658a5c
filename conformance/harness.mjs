// The harness: a Run records each library call (status, headers, body), validates every
// body (validate.mjs) and collects failed expectations; and the server and database
// each backend runs on.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { Client } from 'fhir-kit-client';
import { validateBody } from './validate.mjs';

export const options = { verbose: false };
export const report = { requests: 0, checksPassed: 0, validation: [], protocol: [] };

// ---------------------------------------------------------------------------------------
// Recording requests and checks

export class Run {
  constructor(backend, base) {
    this.backend = backend;
    this.client = new Client({ baseUrl: base });
    this.base = base;
    this.last = undefined;
  }

  /**
   * Runs one library call and records it: status, headers and body, whether it succeeded
   * or the library threw for a non-2xx status. Every body is validated.
   */
  async call(label, fn) {
    let res;
    try {
      const body = await fn();
      const { request, response } = Client.httpFor(body);
      res = {
        label,
        method: request?.method ?? '?',
        url: request?.url ?? '?',
        status: response?.status ?? 0,
        headers: response?.headers ?? new Headers(),
        body,
      };
    } catch (err) {
      if (!err?.response) {
        res = { label, method: '?', url: '?', status: 0, headers: new Headers(), body: undefined };
        report.requests += 1;
        this.last = res;
        this.problem(res, `request failed: ${err?.message ?? err}`);
        this.print(res);
        return res;
      }
      res = {
        label,
        method: err.config?.method ?? '?',
        url: err.config?.url ?? '?',
        status: err.response.status,
        headers: err.config?.headers ?? new Headers(),
        body: err.response.data,
      };
    }
    report.requests += 1;
    this.last = res;
    res.problems = [];
    const hasBody = res.body !== undefined && !(typeof res.body === 'object' && Object.keys(res.body).length === 0);
    if (typeof res.body === 'string') {
      this.problem(res, `body is not JSON: ${res.body.slice(0, 120)}`);
    } else if (hasBody) {
      res.problems = byPath(validateBody(res.body));
      for (const p of res.problems) {
        report.validation.push({ backend: this.backend, request: where(res), label, item: validationItem(res, p), ...p });
      }
      if (res.problems.length === 0) report.checksPassed += 1;
      const ct = res.headers.get('content-type') ?? '';
      if (!ct.startsWith('application/fhir+json')) {
        this.problem(res, `Content-Type is "${ct}", expected application/fhir+json`);
      }
    }
    if (res.status >= 400 && res.method !== 'HEAD' && res.body?.resourceType !== 'OperationOutcome') {
      this.problem(res, `error ${res.status} without an OperationOutcome body`);
    }
    this.print(res);
    return res;
  }

  print(res) {
    const mark = res.problems?.length ? ` (${res.problems.length} validation errors)` : '';
    console.log(`  ${String(res.status).padEnd(3)} ${res.method.padEnd(6)} ${shortUrl(res.url, this.base)}  ${res.label}${mark}`);
    if (options.verbose || res.problems?.length) {
      for (const p of res.problems ?? []) console.log(`        invalid: ${p.path}: ${p.message}`);
    }
  }

  /** A failed expectation about the last (or a given) response. */
  problem(res, what, item) {
    const entry = { backend: this.backend, request: where(res), label: res.label, what, item };
    report.protocol.push(entry);
    console.log(`        FAIL: ${what}${item ? ` (issue 11 item ${item})` : ''}`);
  }

  check(res, ok, what, item) {
    if (ok) {
      report.checksPassed += 1;
      return true;
    }
    this.problem(res, what, item);
    return false;
  }

  status(res, expected, item) {
    const list = Array.isArray(expected) ? expected : [expected];
    return this.check(res, list.includes(res.status), `expected ${list.join(' or ')}, got ${res.status}${diagnostics(res.body)}`, item);
  }
}

/** One problem per path; what each validator said about it. */
function byPath(problems) {
  const out = new Map();
  for (const p of problems) {
    const said = `${p.message} [${p.validator}]`;
    if (out.has(p.path)) out.get(p.path).message += `; ${said}`;
    else out.set(p.path, { path: p.path, message: said });
  }
  return [...out.values()];
}

/** The issue-11 item a validation error most likely belongs to. */
function validationItem(res, p) {
  if (/empty (array|object)/.test(p.message)) return 6;
  if (/[?&](_summary|_elements)=/.test(res.url)) return 5;
  return undefined;
}

function where(res) {
  return `${res.method} ${decodeURIComponent(res.url.replace(/^https?:\/\/[^/]+/, ''))}`;
}

function shortUrl(url, base) {
  const u = url.startsWith(base) ? url.slice(base.length) || '/' : url;
  return decodeURIComponent(u);
}

export function diagnostics(body) {
  if (body?.resourceType !== 'OperationOutcome') return '';
  const texts = (body.issue ?? []).map((i) => `${i.code}: ${i.diagnostics ?? i.details?.text ?? ''}`.trim());
  return texts.length ? ` (${texts.join('; ').slice(0, 300)})` : '';
}

export const party = (who, extra = {}) => ({ headers: { 'X-Acting-Party': who, ...extra } });
export const idOf = (location) => (location ?? '').replace(/^.*?\/?([A-Za-z]+)\/([^/]+)(\/_history\/.*)?$/, '$2');
export const typeOf = (location) => (location ?? '').replace(/^.*?\/?([A-Za-z]+)\/([^/]+)(\/_history\/.*)?$/, '$1');
export const entries = (bundle) => bundle?.entry ?? [];
export const matches = (bundle) => entries(bundle).filter((e) => (e.search?.mode ?? 'match') === 'match');
export const hasSubsetted = (r) => (r?.meta?.tag ?? []).some((t) => t.code === 'SUBSETTED');
export const coding = (system, code) => ({ coding: [{ system, code }] });
export const clone = (v) => JSON.parse(JSON.stringify(v));

// ---------------------------------------------------------------------------------------
// Servers and databases

// Servers still running when this process ends (an exception, Ctrl-C) are stopped too.
const children = new Set();
process.on('exit', () => children.forEach((c) => c.kill('SIGTERM')));
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(130));
}

export async function startServer(bin, databaseUrl) {
  if (!fs.existsSync(bin)) throw new Error(`${bin} not found: run \`cargo build --locked\` first`);
  const child = spawn(
    bin,
    [
      'serve',
      '--listen', '127.0.0.1:0',
      '--database-url', databaseUrl,
      '--initial-directory', 'sample',
      '--open-mode', 'false',
      '--log-format', 'json',
      '--db-pool-size', '4',
      // The contact-deadline job runs at start (no Tasks yet) and then not during the run,
      // so no version of its own races the client's If-Match.
      '--overdue-check-interval', '1h',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  child.on('exit', () => children.delete(child));
  const tail = [];
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${tail.join('\n')}`)), 60_000);
    let buf = '';
    const onData = (chunk) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        tail.push(line);
        if (tail.length > 40) tail.shift();
        const m = line.includes('wor-hub listening') && line.match(/"port":\s*(\d+)/);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      }
    };
    child.stderr.on('data', onData);
    child.stdout.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${tail.join('\n')}`));
    });
  });
  return { child, base: `http://127.0.0.1:${port}/fhir`, tail };
}

export function stopServer(server) {
  if (server?.child && server.child.exitCode === null) server.child.kill('SIGTERM');
}

function psql(url, sql) {
  execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', sql], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function pgDatabase(adminUrl) {
  const name = `wor_hub_conformance_${process.pid}_${Date.now()}`;
  psql(adminUrl, `CREATE DATABASE ${name}`);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => psql(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
