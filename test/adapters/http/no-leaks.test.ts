// The public contract of an email's page and JSON (docs/architecture.md, "Delivery rules"): they
// show the reason a person can act on, never a configuration variable, a file path, a host, an
// address or port, a URL, a stack frame or a credential; the operator's hint goes to the worker's
// log. Every failure of every transport here is produced by the real adapter against a real
// counterpart (the Mailgun stand-in, an in-process smtp-server, a folder on disk), recorded by
// the real DeliverEmail, and read back through the real HTTP app.
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerOptions } from 'smtp-server';
import { FailoverEmailSender } from '../../../src/adapters/failover/failover-email-sender.js';
import type { StatusJson } from '../../../src/adapters/http/status-page.js';
import { MailgunEmailSender } from '../../../src/adapters/mailgun/mailgun-email-sender.js';
import { InMemoryDeliveryLedger } from '../../../src/adapters/memory/in-memory-stores.js';
import { OutboxEmailSender } from '../../../src/adapters/outbox/outbox-email-sender.js';
import { SmtpEmailSender } from '../../../src/adapters/smtp/smtp-email-sender.js';
import { DeliverEmail } from '../../../src/application/deliver-email.js';
import type { EmailSender } from '../../../src/application/ports/email-sender.js';
import type { Logger } from '../../../src/application/ports/system.js';
import type { AttemptRecord } from '../../../src/domain/delivery.js';
import type { MailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { startMailgunStandIn } from '../../../src/stand-ins/mailgun-stand-in.js';
import { aRequest, aTask } from '../../support/builders.js';
import { RecordingLogger, fixedClock } from '../../support/fakes.js';
import type { SmtpReceiver } from '../../support/mail-receivers.js';
import { startSmtpReceiver } from '../../support/mail-receivers.js';
import { FROM, MAILGUN_DOMAIN, MAILGUN_KEY } from '../senders/support.js';
import type { Harness } from './harness.js';
import { startHttp } from './harness.js';

const WRONG_KEY = 'key-wrong-0123456789abcdef-SECRET';
const SMTP_USER = 'mailer';
const SMTP_PASSWORD = 'pa:ss w0rd/SECRET';
const WRONG_PASSWORD = 'wr0ng:P@ss/word SECRET';
const TIMEOUT_MS = 600;

// Hosts that only the providers' answers below name: none may reach a page.
const PROXY_HOST = 'edge-7.api.internal';
const RELAY_HOST = 'mx.relay.example.net';
const OTHER_REGION = 'api.eu.mailgun.net';

const APACHE_404 =
  '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN"><html><head><title>404 Not Found</title>' +
  '</head><body><h1>Not Found</h1><p>The requested URL /v3/mg.example.org/messages was not ' +
  'found on this server.</p><hr><address>Apache/2.4.58 Server at 127.0.0.1 Port 80</address>' +
  '</body></html>';
const NGINX_502 =
  '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>' +
  `</center><hr><center>nginx (upstream ${PROXY_HOST}:8443 via http://${PROXY_HOST}/v3)</center>` +
  '</body></html>';

/** Everything the rows share: started once, since each is a real server or folder. */
interface Parts {
  readonly standIn: MailgunStandIn;
  readonly smtp: SmtpReceiver;
  /** A port nothing listens on. */
  readonly closedPort: number;
  /** Answers every request with a redirect to another Mailgun region. */
  readonly redirectBase: string;
  /** The test's own folder, under the system's temporary folder. */
  readonly base: string;
  /** Every port in play, none of which may be shown. */
  readonly ports: number[];
}

interface Rig {
  readonly sender: EmailSender;
  /** Whatever the sender reports besides its outcome (a failover) has been recorded. */
  settled?(): Promise<void>;
  close?(): Promise<void>;
}

interface Row {
  readonly transport: string;
  readonly what: string;
  open(p: Parts, log: Logger, h: Harness): Promise<Rig>;
  /** Who the email is for; some failures are about a recipient. */
  readonly to?: string;
  readonly outcome: AttemptRecord['outcome'];
  /** What the page and the JSON must still say: a reason a person can act on. */
  readonly shows: readonly RegExp[];
  /** What the worker's log must say for the operator. */
  readonly logs?: readonly RegExp[];
}

const mailgun = (log: Logger, apiBase: string, apiKey = MAILGUN_KEY): MailgunEmailSender =>
  new MailgunEmailSender({ apiBase, apiKey, from: FROM, timeoutMs: TIMEOUT_MS, log });

const smtp = (log: Logger, url: string): SmtpEmailSender =>
  new SmtpEmailSender({
    url,
    from: FROM,
    timeoutMs: TIMEOUT_MS,
    log,
    ignoreTLS: true,
    pool: false,
  });

const closing = (sender: MailgunEmailSender | SmtpEmailSender): Rig => ({
  sender,
  close: async () => sender.close(),
});

/** A Mailgun fault scripted on the stand-in, answered to our configured sender. */
const mailgunFault =
  (fault: Parameters<MailgunStandIn['script']>[0]) =>
  async (p: Parts, log: Logger): Promise<Rig> => {
    p.standIn.script(fault);
    return closing(mailgun(log, p.standIn.baseUrl));
  };

const wrongPassword = (p: Parts): string => p.smtp.url({ user: SMTP_USER, pass: WRONG_PASSWORD });
const rightPassword = (p: Parts): string => p.smtp.url({ user: SMTP_USER, pass: SMTP_PASSWORD });

/** An smtp-server of its own, for the answers the shared receiver does not script. */
async function scriptedSmtp(
  options: (sockets: Set<Socket>) => SMTPServerOptions,
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    closeTimeout: 100,
    ...options(sockets),
  });
  server.server.on('connection', (socket: Socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const smtpError = (message: string, responseCode: number): Error =>
  Object.assign(new Error(message), { responseCode });

const rows: Row[] = [
  {
    transport: 'mailgun',
    what: '401: the API key is wrong',
    open: async (p, log) => closing(mailgun(log, p.standIn.baseUrl, WRONG_KEY)),
    outcome: 'permanent',
    shows: [/credentials/, /401/],
    logs: [/MAILGUN_API_KEY/, /MAILGUN_API_BASE/],
  },
  {
    transport: 'mailgun',
    what: '403: a sandbox domain',
    open: mailgunFault({ status: 403 }),
    outcome: 'permanent',
    shows: [/403/, /Sandbox subdomains are for test purposes only/],
  },
  {
    transport: 'mailgun',
    what: "404 with a web server's HTML page",
    open: mailgunFault({ status: 404, json: false, message: APACHE_404 }),
    outcome: 'permanent',
    shows: [/404/, /Mailgun/],
    logs: [/MAILGUN_API_BASE/, /Apache\/2\.4\.58 Server at 127\.0\.0\.1/],
  },
  {
    transport: 'mailgun',
    what: '404 from a wrong path in the API base',
    open: async (p, log) => closing(mailgun(log, p.standIn.baseUrl.replace('/v3/', '/v2/'))),
    outcome: 'permanent',
    shows: [/404/, /Mailgun/],
    logs: [/MAILGUN_API_BASE/],
  },
  {
    transport: 'mailgun',
    what: '404 with JSON: a domain Mailgun does not hold (maybe not yet)',
    open: async (p, log) =>
      closing(mailgun(log, p.standIn.baseUrl.replace(MAILGUN_DOMAIN, 'other.example.org'))),
    outcome: 'transient',
    shows: [/404/, /Domain not found/],
  },
  {
    transport: 'mailgun',
    what: '400: a refused address',
    open: mailgunFault({ status: 400 }),
    outcome: 'permanent',
    shows: [/400/, /parameter is not a valid address/],
  },
  {
    transport: 'mailgun',
    what: '400 quoting our own URL and address back',
    open: async (p, log) => {
      p.standIn.script({
        status: 400,
        message: `Invalid request to ${p.standIn.baseUrl}/messages from 127.0.0.1:50123: 'subject' is too long`,
      });
      return closing(mailgun(log, p.standIn.baseUrl));
    },
    outcome: 'permanent',
    shows: [/400/, /Invalid request/, /is too long/],
  },
  {
    transport: 'mailgun',
    what: '429 with Retry-After',
    open: mailgunFault({ status: 429, retryAfterSeconds: 2 }),
    outcome: 'transient',
    shows: [/429/, /Too many requests/],
  },
  {
    transport: 'mailgun',
    what: '500',
    open: mailgunFault({ status: 500 }),
    outcome: 'transient',
    shows: [/500/, /Internal Server Error/],
  },
  {
    transport: 'mailgun',
    what: '502 from a proxy whose page names its upstream',
    open: mailgunFault({ status: 502, message: NGINX_502 }),
    outcome: 'transient',
    shows: [/502/, /Bad Gateway/],
  },
  {
    transport: 'mailgun',
    what: '301 without a Location',
    open: mailgunFault({ status: 301, message: 'Moved Permanently' }),
    outcome: 'permanent',
    shows: [/redirect/, /301/],
    logs: [/MAILGUN_API_BASE/],
  },
  {
    transport: 'mailgun',
    what: '308 to another region',
    open: async (p, log) => closing(mailgun(log, p.redirectBase)),
    outcome: 'permanent',
    shows: [/redirect/, /308/],
    logs: [/MAILGUN_API_BASE/, new RegExp(`https://${OTHER_REGION.replace(/\./g, '\\.')}/`)],
  },
  {
    transport: 'mailgun',
    what: 'connection refused',
    open: async (p, log) =>
      closing(mailgun(log, `http://127.0.0.1:${p.closedPort}/v3/${MAILGUN_DOMAIN}`)),
    outcome: 'transient',
    shows: [/Mailgun/, /ECONNREFUSED/],
    logs: [/127\.0\.0\.1:\d+/],
  },
  {
    transport: 'mailgun',
    what: 'a dropped connection',
    open: mailgunFault({ dropConnection: true }),
    outcome: 'transient',
    shows: [/Mailgun/, /ECONNRESET/],
    logs: [/socket hang up/, /127\.0\.0\.1:\d+/],
  },
  {
    transport: 'mailgun',
    what: 'no answer in time',
    open: mailgunFault({ hang: true }),
    outcome: 'transient',
    shows: [/timed out after 600ms/],
  },
  {
    transport: 'smtp',
    what: '535: the password is wrong',
    open: async (p, log) => closing(smtp(log, wrongPassword(p))),
    outcome: 'permanent',
    shows: [/credentials/, /535/],
    logs: [/SMTP_URL/],
  },
  {
    transport: 'smtp',
    what: '421 at the greeting, naming the relay and our address',
    open: async (p, log) => {
      const server = await scriptedSmtp(() => ({
        onConnect(session, callback) {
          callback(
            smtpError(
              `4.7.0 ${RELAY_HOST} Error: too many connections from ${session.remoteAddress}`,
              421,
            ),
          );
        },
      }));
      const sender = smtp(log, server.url);
      return { sender, close: () => (sender.close(), server.close()) };
    },
    outcome: 'transient',
    shows: [/421/, /too many connections/],
    logs: [new RegExp(RELAY_HOST.replace(/\./g, '\\.'))],
  },
  {
    transport: 'smtp',
    what: '451 on DATA',
    open: async (p, log) => {
      p.smtp.failNext('transient');
      return closing(smtp(log, rightPassword(p)));
    },
    outcome: 'transient',
    shows: [/451/, /Try again later/],
  },
  {
    transport: 'smtp',
    what: '550 on DATA',
    open: async (p, log) => {
      p.smtp.failNext('permanent');
      return closing(smtp(log, rightPassword(p)));
    },
    outcome: 'permanent',
    shows: [/550/, /Message refused by policy/],
  },
  {
    transport: 'smtp',
    what: '550 for the recipient',
    to: 'gone@example.org',
    open: async (p, log) => {
      p.smtp.refuseRecipient('gone@example.org', 550);
      return closing(smtp(log, rightPassword(p)));
    },
    outcome: 'permanent',
    shows: [/550/, /gone@example\.org/],
  },
  {
    transport: 'smtp',
    what: 'connection refused',
    open: async (p, log) => closing(smtp(log, `smtp://127.0.0.1:${p.closedPort}`)),
    outcome: 'transient',
    shows: [/SMTP server could not be reached/, /ECONNREFUSED/],
    logs: [/127\.0\.0\.1:\d+/, /SMTP_URL/],
  },
  {
    transport: 'smtp',
    what: 'a connection closed during DATA',
    open: async (_p, log) => {
      const server = await scriptedSmtp((sockets) => ({
        onData(stream, _session, _callback) {
          stream.resume();
          stream.on('end', () => sockets.forEach((s) => s.destroy()));
        },
      }));
      const sender = smtp(log, server.url);
      return { sender, close: () => (sender.close(), server.close()) };
    },
    outcome: 'transient',
    shows: [/SMTP server/, /ECONNECTION/],
  },
  {
    transport: 'smtp',
    what: 'no answer in time',
    open: async (p, log) => {
      p.smtp.failNext('hang');
      return closing(smtp(log, rightPassword(p)));
    },
    outcome: 'transient',
    shows: [/timed out after 600ms/],
  },
  {
    transport: 'outbox',
    what: 'a folder that cannot be written',
    open: async (p, log) => {
      // A file where a parent folder should be fails the write even for root, which a chmod
      // would not.
      const file = join(p.base, 'not-a-folder');
      await writeFile(file, 'x');
      return { sender: new OutboxEmailSender({ dir: join(file, 'outbox'), from: FROM, log }) };
    },
    outcome: 'transient',
    shows: [/could not write the message to the outbox/, /ENOTDIR/],
    logs: [/OUTBOX_DIR/, /not-a-folder/],
  },
  {
    transport: 'outbox',
    what: 'a message written',
    open: async (p, log) => ({
      sender: new OutboxEmailSender({ dir: join(p.base, 'outbox'), from: FROM, log }),
    }),
    outcome: 'sent',
    shows: [/sent/i, /@sender\.example\.org/],
    logs: [/no-leaks-\w+\/outbox\/[^"]+\.eml/],
  },
  {
    transport: 'mailgun,smtp',
    what: 'Mailgun unreachable, then a wrong SMTP password',
    open: async (p, log, h) => {
      const first = mailgun(log, `http://127.0.0.1:${p.closedPort}/v3/${MAILGUN_DOMAIN}`);
      const second = smtp(log, wrongPassword(p));
      const recorded: Promise<void>[] = [];
      const sender = new FailoverEmailSender({
        senders: [first, second],
        log,
        // As the composition root does: the failover is recorded and shown on the page.
        onFailover: (request, from, to, reason) =>
          void recorded.push(
            h.change({
              type: 'EmailFailedOver',
              id: request.id,
              at: new Date().toISOString(),
              to: request.to,
              subject: request.subject,
              fromTransport: from,
              toTransport: to,
              reason,
            }),
          ),
      });
      return {
        sender,
        settled: async () => void (await Promise.all(recorded)),
        close: async () => {
          first.close();
          second.close();
        },
      };
    },
    outcome: 'permanent',
    shows: [/Mailgun/, /ECONNREFUSED/, /credentials/],
    logs: [/127\.0\.0\.1:\d+/, /SMTP_URL/],
  },
  {
    transport: 'mailgun,smtp',
    what: 'both fail for now',
    open: async (p, log) => {
      p.standIn.script({ status: 502, message: NGINX_502 });
      const first = mailgun(log, p.standIn.baseUrl);
      const second = smtp(log, `smtp://127.0.0.1:${p.closedPort}`);
      return {
        sender: new FailoverEmailSender({ senders: [first, second], log }),
        close: async () => {
          first.close();
          second.close();
        },
      };
    },
    outcome: 'transient',
    shows: [/all senders failed/, /Bad Gateway/, /SMTP server could not be reached/],
    logs: [/127\.0\.0\.1:\d+/, /SMTP_URL/],
  },
];

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** What a page or an answer must never contain, each with the name the failure message gives. */
function leaksIn(text: string, p: Parts): string[] {
  const literals = [
    '/tmp',
    tmpdir(),
    p.base,
    'MAILGUN_',
    'SMTP_URL',
    'OUTBOX_DIR',
    '127.0.0.1',
    'localhost:',
    'http://',
    'https://',
    '    at ',
    '.js:',
    PROXY_HOST,
    RELAY_HOST,
    OTHER_REGION,
    MAILGUN_KEY,
    WRONG_KEY,
    b64(`api:${MAILGUN_KEY}`),
    b64(`api:${WRONG_KEY}`),
    SMTP_PASSWORD,
    WRONG_PASSWORD,
    encodeURIComponent(SMTP_PASSWORD),
    encodeURIComponent(WRONG_PASSWORD),
    b64(`\u0000${SMTP_USER}\u0000${WRONG_PASSWORD}`),
    ...p.ports.map((port) => `:${port}`),
  ];
  const found = literals.filter((l) => text.includes(l));
  // A path: a slash after a space, quote or bracket, not a closing tag and not a link of ours
  // (the navigation's sections and the favicon are on every page).
  for (const [path] of text.matchAll(/(?<![<\w])\/[^\s"'<>()[\]/]+/g)) {
    if (!/^\/(emails|static|dead-letters|suppressions|webhooks|favicon\.svg)$/.test(path)) {
      found.push(`a path (${path})`);
    }
  }
  for (const [host] of text.matchAll(/(?<![\w.-])[a-z][\w-]*(?:\.[\w-]+)*:\d{2,5}\b/gi)) {
    found.push(`a host and port (${host})`);
  }
  for (const [port] of text.matchAll(/(?<!\d):\d{4,5}(?!\d)/g)) found.push(`a port (${port})`);
  for (const [ip] of text.matchAll(/(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])/g)) {
    found.push(`an IP address (${ip})`);
  }
  return found;
}

describe('Pages and API answers leak nothing, whatever the transport reported', function () {
  this.timeout(20_000);
  let h: Harness;
  let parts: Parts;
  let redirects: ReturnType<typeof createHttpServer>;

  before(async () => {
    const standIn = await startMailgunStandIn({ domain: MAILGUN_DOMAIN, apiKey: MAILGUN_KEY });
    const receiver = await startSmtpReceiver({ user: SMTP_USER, pass: SMTP_PASSWORD });
    const probe = createNetServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    redirects = createHttpServer((req, res) => {
      req.resume();
      res
        .writeHead(308, { location: `https://${OTHER_REGION}/v3/${MAILGUN_DOMAIN}/messages` })
        .end();
    });
    await new Promise<void>((resolve) => redirects.listen(0, '127.0.0.1', resolve));
    const redirectPort = (redirects.address() as AddressInfo).port;
    h = await startHttp();
    parts = {
      standIn,
      smtp: receiver,
      closedPort,
      redirectBase: `http://127.0.0.1:${redirectPort}/v3/${MAILGUN_DOMAIN}`,
      base: await mkdtemp(join(tmpdir(), 'no-leaks-')),
      ports: [
        Number(new URL(standIn.baseUrl).port),
        receiver.port,
        closedPort,
        redirectPort,
        Number(new URL(h.url).port),
      ],
    };
  });
  afterEach(() => parts.standIn.clear());
  after(async () => {
    await h.close();
    await parts.standIn.close();
    await parts.smtp.close();
    redirects.closeAllConnections();
    await new Promise<void>((resolve) => redirects.close(() => resolve()));
    await rm(parts.base, { recursive: true, force: true });
  });

  for (const row of rows) {
    it(`${row.transport}: ${row.what}`, async () => {
      const log = new RecordingLogger();
      const rig = await row.open(parts, log, h);
      const request = aRequest(row.to !== undefined ? { to: row.to } : {});
      try {
        await h.emails.record(request)();
        const worker = new DeliverEmail(
          rig.sender,
          h.emails,
          h.bus,
          new InMemoryDeliveryLedger(),
          { maxAttempts: 3, delaysMs: [1000] },
          fixedClock(),
          log,
          { holder: 'no-leaks' },
        );
        await worker.execute(aTask({ request }))();
        await rig.settled?.();
      } finally {
        await rig.close?.();
      }

      const url = `${h.url}/emails/${request.id}`;
      const page = await (await fetch(url, { headers: { accept: 'text/html' } })).text();
      const answer = await (await fetch(url, { headers: { accept: 'application/json' } })).text();
      const json = JSON.parse(answer) as StatusJson;
      expect(json.attempts.map((a) => a.outcome)).to.deep.equal([row.outcome]);
      expect(leaksIn(page, parts), 'on the page').to.deep.equal([]);
      expect(leaksIn(answer, parts), 'in the JSON').to.deep.equal([]);

      // Still a reason a person can act on, on the page and in the JSON's attempt and reason.
      const said = [
        json.status,
        json.provider_id ?? json.reason ?? '',
        json.attempts[0]?.detail ?? '',
        ...(json.failovers ?? []).map((f) => f.reason),
      ].join(' | ');
      for (const words of row.shows) {
        expect(page, 'the page').to.match(words);
        expect(said, 'the JSON').to.match(words);
      }

      // The operator still finds what to fix, in the worker's log, and no secret there either.
      const logged = log.text();
      for (const hint of row.logs ?? []) expect(logged, 'the log').to.match(hint);
      for (const secret of [MAILGUN_KEY, WRONG_KEY, SMTP_PASSWORD, WRONG_PASSWORD]) {
        expect(logged, 'the log').not.to.include(secret);
      }
    });
  }
});
