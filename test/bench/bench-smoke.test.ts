// `npm run bench` in its tiny mode (BENCH_SMOKE=1: a few dozen requests and emails per row, one
// round), so that the bench scripts do not rot between the runs that matter. It asserts that the
// run completes, that its report has every section and every target row, and that it cleaned up
// after itself; never a number: timings live in BENCHMARKS.md, not in tests.
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { POSTGRES_URL, requirePostgres } from '../support/postgres.js';
import { requireRabbitMq } from '../support/rabbitmq.js';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

/** The headline's rows, by the start of their first cell. */
const TARGET_ROWS = [
  '| Accept: `email server` (database, API key) vs bare Koa + koa-body + INSERT + confirmed publish,',
  '| Accept: `email server` (database, API key) vs bare Koa + koa-body + confirmed publish (no database),',
  '| Worker → Mailgun stand-in vs a bare consumer (POST, UPDATE, ack)',
  '| Worker at 670 ms provider latency, WORKER_CONCURRENCY=32',
  '| Broker messages per email, happy path',
  '| `email server` RSS after the accept load',
  '| `email worker` RSS after draining N into the Mailgun stand-in',
  '| `email dev` RSS (embedded PostgreSQL)',
  '| Scale-out: two `email worker`s vs one at 670 ms provider latency',
  '| Scale-out: two `email worker`s vs one, no provider latency',
  '| Scale-out: two `email server`s vs one',
];

const SECTIONS = [
  '## Machine',
  '## Targets',
  '## Headline',
  '## 1. Accept path',
  '## 2. Delivery path',
  '## 3. Mailgun path',
  '### At 670 ms provider latency',
  '## 4. Broker work per email',
  '## 5. Scale-out',
  '## Memory',
  '## Settings, caveats and cleanup',
];

describe('npm run bench, smoke run (BENCH_SMOKE=1)', function () {
  // Two minutes at most on a busy shared machine; a hung run is ended by the bench's own watchdog.
  this.timeout(240_000);
  let dir: string;
  let report: string;
  let stderr: string;
  let code: number | null;

  before(async () => {
    await requirePostgres();
    await requireRabbitMq();
    dir = await mkdtemp(join(tmpdir(), 'bench-smoke-'));
    const output = join(dir, 'BENCHMARKS.md');
    const child = spawn(process.execPath, [RUN], {
      env: { ...process.env, BENCH_SMOKE: '1', BENCH_OUTPUT: output },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const chunks: string[] = [];
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => chunks.push(chunk));
    code = await new Promise((resolve) => child.once('exit', resolve));
    stderr = chunks.join('');
    report = await readFile(output, 'utf8').catch(() => '');
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('completes and writes its report where BENCH_OUTPUT says', () => {
    expect(code, stderr.slice(-4000)).to.equal(0);
    expect(report).to.match(/^# Benchmarks\n/);
  });

  it('has every section and a row for every target, each judged or said not measured', () => {
    for (const section of SECTIONS) expect(report, section).to.include(`\n${section}`);
    for (const row of TARGET_ROWS) {
      const line = report.split('\n').find((l) => l.startsWith(row));
      expect(line, row).to.be.a('string');
      expect(line, row).to.match(/\| (✔|✘|— \(not measured\)) \|$/);
    }
  });

  it('says which way the split between two servers went, by the rates of its own rows', () => {
    const rate = (row: string) =>
      Number(new RegExp(`^\\| ${row} \\| \\d+ \\| (\\d+) \\|`, 'm').exec(report)?.[1]);
    const one = rate('scale-out: one `email server`, no consumer');
    const two = rate('scale-out: two `email server`s, the requests alternating, no consumer');
    expect(one, 'one server').to.be.above(0);
    expect(two, 'two servers').to.be.above(0);
    const said = two > one ? 'still gained more than the split cost here' : 'outweighed';
    expect(report).to.include(said);
  });

  it('leaves no queue under its prefix and drops its database', async () => {
    const prefix = /bench: prefix (bench-[0-9a-f]+)/.exec(stderr)?.[1];
    const database = /bench: database (bench_[0-9a-f]+)/.exec(stderr)?.[1];
    expect(prefix, 'the prefix on stderr').to.be.a('string');
    expect(database, 'the database on stderr').to.be.a('string');
    expect(report).to.include('no queue under the prefix left');
    expect(report).to.include(`database ${database} dropped`);

    const { stdout } = await promisify(execFile)('rabbitmqctl', [
      'list_queues',
      'name',
      '--no-table-headers',
      '--quiet',
    ]);
    const left = stdout.split('\n').filter((name) => name.trim().startsWith(`${prefix}.`));
    expect(left).to.deep.equal([]);

    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [
        database,
      ]);
      expect(rows).to.have.length(0);
    } finally {
      await client.end();
    }
  });
});
