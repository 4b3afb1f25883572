// A real broker restart (`rabbitmqctl stop_app` / `start_app`) under a running `email server` and
// `email worker`: both ride it out by themselves, the server never answers 202 while the broker is
// away, and every email it accepted before the restart is still there afterwards (quorum queues
// are durable) and is sent by the next worker.
//
// This file stops the shared broker: every path out of it (the test, its `after` hook, the end of
// the mocha process, a stop signal) starts the broker again.
import { expect } from 'chai';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requirePostgres } from '../support/postgres.js';
import type { LogRecord } from '../support/process.js';
import { waitForRecord } from '../support/process.js';
import { requireRabbitMq } from '../support/rabbitmq.js';
import type { Posted, Started } from '../support/roles.js';
import {
  Roles,
  closed,
  httpStatus,
  mapLimit,
  postEmail,
  queueDepth,
  queueEmail,
  readyzIs,
  waitForStatus,
} from '../support/roles.js';
import { eventually } from '../support/waiting.js';

const run = promisify(execFile);

/** `rabbitmqctl` calls may wait on the node (await_startup); never forever. */
const CTL_TIMEOUT_MS = 60_000;
const ctl = (...args: string[]) => run('rabbitmqctl', args, { timeout: CTL_TIMEOUT_MS });

/** True from just before `stop_app` until `await_startup` has confirmed the broker is back. */
let brokerMayBeStopped = false;

/** For the paths that cannot wait (process exit, a signal): synchronous and never throwing. */
function startBrokerSync(): void {
  if (!brokerMayBeStopped) return;
  for (const args of [['start_app'], ['await_startup']]) {
    try {
      execFileSync('rabbitmqctl', args, { stdio: 'ignore', timeout: CTL_TIMEOUT_MS });
    } catch {
      // Already running, or nothing more this process can do about it.
    }
  }
  brokerMayBeStopped = false;
}

// A process.exit() before the `after` hook ran (a crash, a reporter, --exit): start it here.
process.once('exit', startBrokerSync);

// A SIGINT/SIGTERM/SIGHUP while the broker is down: start it again, then exit as the signal
// would have, but through process.exit, so that the 'exit' listeners still run (the Roles fixture
// kills its children there; a default signal death would leave them running).
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const onStopSignal = (signal: NodeJS.Signals): void => {
  startBrokerSync();
  unguardSignals();
  process.exit(128 + (constants.signals[signal] ?? 0));
};
const guardSignals = (): void => {
  for (const signal of STOP_SIGNALS) process.on(signal, onStopSignal);
};
const unguardSignals = (): void => {
  for (const signal of STOP_SIGNALS) process.off(signal, onStopSignal);
};

async function stopBroker(): Promise<void> {
  brokerMayBeStopped = true;
  guardSignals();
  await ctl('stop_app');
}

/** Starts the broker's app whatever its state (start_app on a running app is a no-op). */
async function startBroker(): Promise<void> {
  await ctl('start_app').catch(() => undefined);
  await ctl('await_startup');
  brokerMayBeStopped = false;
  unguardSignals();
}

/** A 503 from the API must be the honest kind: Retry-After and a machine-readable code. */
function expectQueueUnavailable(answer: Posted): void {
  expect(answer.status, JSON.stringify(answer.body)).to.equal(503);
  expect(answer.retryAfter, 'Retry-After').to.match(/^\d+$/);
  expect(answer.body.error?.code).to.equal('queue_unavailable');
  expect(answer.body.error?.message).to.be.a('string').and.not.empty;
}

const emlIds = async (dir: string): Promise<string[]> =>
  (await readdir(dir))
    .filter((name) => name.endsWith('.eml'))
    .map((name) => name.slice(0, -'.eml'.length))
    .sort();

const countOf = (proc: Started['proc'], msg: string): number =>
  proc.records.filter((r) => r.msg === msg).length;

/** The warnings and errors a role logged: what the report of a run shows. */
const complaints = (records: readonly LogRecord[]): string[] =>
  records.filter((r) => r.level >= 40).map((r) => `${r.msg}${r.err ? ` (${String(r.err)})` : ''}`);

describe('email server + email worker across a RabbitMQ restart', function () {
  // The broker's stop and start take seconds, and each role reconnects on its own backoff.
  this.timeout(90_000);
  let roles: Roles | undefined;
  let steady: Roles | undefined;
  let outbox: string | undefined;

  before(async () => {
    await requireRabbitMq();
    await requirePostgres();
    outbox = await mkdtemp(join(tmpdir(), 'email-restart-'));
    await mkdir(join(outbox, 'main'));
    await mkdir(join(outbox, 'steady'));
    roles = new Roles({ MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: join(outbox, 'main') });
    // A second pair under a prefix of its own whose worker stays up through the restart.
    steady = new Roles({ MAIL_TRANSPORT: 'outbox', OUTBOX_DIR: join(outbox, 'steady') });
  });

  after(async () => {
    try {
      // Always, whatever happened: a broker left stopped breaks every later test.
      await startBroker();
    } finally {
      await roles?.cleanup();
      await steady?.cleanup();
      if (outbox) await rm(outbox, { recursive: true, force: true });
    }
  });

  it('both roles reconnect by themselves, and no email answered 202 is lost', async () => {
    if (!roles || !steady || !outbox) throw new Error('before() did not finish');
    const { prefix } = roles;
    const mainOutbox = join(outbox, 'main');
    const inOutbox = (dir: string, ids: readonly string[]) =>
      eventually(
        async () => {
          const present = new Set(await emlIds(dir));
          return ids.every((id) => present.has(id)) ? true : undefined;
        },
        { timeoutMs: 20_000, what: `${ids.length} .eml files in ${dir}` },
      );

    const [server, firstWorker, steadyServer, steadyWorker] = await Promise.all([
      roles.start('server'),
      roles.start('worker'),
      steady.start('server'),
      steady.start('worker'),
    ]);

    // They listen before their connection is up: wait until the broker is theirs.
    for (const { url } of [server, firstWorker, steadyServer, steadyWorker]) {
      await readyzIs(url, 200, 15_000);
    }

    // 1. A few emails, sent the usual way.
    const warmUp = await mapLimit([0, 1, 2], 3, (i) =>
      queueEmail(server.url, { subject: `Before the restart ${i}` }),
    );
    await inOutbox(mainOutbox, warmUp);
    await mapLimit(warmUp, 3, (id) => waitForStatus(server.url, id, 'sent'));

    // 2. No worker: what is accepted now exists only in the broker.
    firstWorker.proc.child.kill('SIGTERM');
    expect(await firstWorker.proc.exited).to.deep.equal({ code: 0, signal: null });
    await closed(firstWorker.proc);
    const waiting: string[] = [];
    for (let i = 0; i < 5; i++) {
      waiting.push(await queueEmail(server.url, { subject: `Waiting through the restart ${i}` }));
    }
    await eventually(
      async () => {
        const depth = await queueDepth(prefix, 'send');
        return depth.messageCount === 5 && depth.consumerCount === 0 ? depth : undefined;
      },
      { timeoutMs: 10_000, what: 'the 5 emails to wait in the send queue, with no consumer' },
    );

    // 3. The broker goes away.
    const refused: Posted[] = [];
    const stoppingAt = Date.now();
    const lostBefore = countOf(server.proc, 'Lost the RabbitMQ connection; reconnecting');
    try {
      await stopBroker();
      for (const url of [server.url, steadyServer.url, steadyWorker.url]) {
        await readyzIs(url, 503, 15_000);
      }
      // Bounded polling for the 503; every answer on the way must be one too, never a 202.
      await eventually(
        async () => {
          const answer = await postEmail(server.url, { subject: 'While the broker is stopped' });
          refused.push(answer);
          return answer.status === 202 || answer.status === 503 ? answer : undefined;
        },
        { timeoutMs: 15_000, what: 'a POST to be answered while the broker is stopped' },
      );
      refused.push(await postEmail(steadyServer.url, { subject: 'Stopped broker, other server' }));
      for (const answer of refused) expectQueueUnavailable(answer);
      for (const url of [server.url, steadyServer.url, steadyWorker.url]) {
        expect(await httpStatus(`${url}/healthz`), `${url}/healthz while stopped`).to.equal(200);
      }
    } finally {
      await startBroker();
    }
    const startedAt = Date.now();

    // 4. Ready again by themselves; the server accepts again.
    for (const url of [server.url, steadyServer.url, steadyWorker.url]) {
      await readyzIs(url, 200, 60_000);
    }
    const readyAt = Date.now();
    for (const proc of [server.proc, steadyServer.proc, steadyWorker.proc]) {
      expect(proc.child.exitCode, `${proc.child.pid} still running`).to.equal(null);
    }
    await waitForRecord(
      server.proc,
      (r) => r.msg === 'Lost the RabbitMQ connection; reconnecting',
      'the server to log the lost connection',
    );
    expect(countOf(server.proc, 'Lost the RabbitMQ connection; reconnecting')).to.be.above(
      lostBefore,
    );
    const after = await postEmail(server.url, { subject: 'After the restart' });
    expect(after.status, JSON.stringify(after.body)).to.equal(202);
    const afterId = String(after.body.id);
    // The broker kept the 5 through its restart, next to the new one.
    await eventually(
      async () => {
        const depth = await queueDepth(prefix, 'send');
        return depth.messageCount === 6 && depth.consumerCount === 0 ? depth : undefined;
      },
      {
        timeoutMs: 10_000,
        what: 'the 5 emails from before the restart and the new one in the send queue',
      },
    );

    // The worker that was running through the restart consumes again.
    const steadyId = await queueEmail(steadyServer.url, { subject: 'Through the restart' });
    await inOutbox(join(outbox, 'steady'), [steadyId]);
    await waitForStatus(steadyServer.url, steadyId, 'sent');
    await eventually(
      async () => (countOf(steadyWorker.proc, 'Consuming email tasks') >= 2 ? true : undefined),
      { timeoutMs: 10_000, what: 'the steady worker to log that it consumes again' },
    );

    // 5. A new worker sends every email accepted since the first one stopped.
    const accepted = [...waiting, afterId];
    const secondWorker = await roles.start('worker');
    await inOutbox(mainOutbox, accepted);
    expect(await emlIds(mainOutbox), 'exactly the accepted emails; none of the 503s').to.deep.equal(
      [...warmUp, ...accepted].sort(),
    );
    // The worker wrote each outcome to the email log, where the server reads it.
    await mapLimit(accepted, 6, (id) => waitForStatus(server.url, id, 'sent'));
    expect(await queueDepth(roles.prefix, 'send')).to.deep.include({ messageCount: 0 });

    const notes = [
      ['server', server.proc],
      ['steady server', steadyServer.proc],
      ['steady worker', steadyWorker.proc],
      ['second worker', secondWorker.proc],
    ] as const;
    for (const [role, proc] of notes) {
      const said = complaints(proc.records);
      if (said.length > 0) console.log(`      ${role} warned: ${[...new Set(said)].join(' | ')}`);
    }
    console.log(
      `      stop_app to await_startup: ${((startedAt - stoppingAt) / 1000).toFixed(1)} s; all ready ` +
        `${((readyAt - startedAt) / 1000).toFixed(1)} s after await_startup; ` +
        `${refused.length} POSTs refused with 503 meanwhile; ${accepted.length} sent after`,
    );
  });
});
