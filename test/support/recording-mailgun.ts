// A fake Mailgun for the pacing tests: it records when each request arrived and answers what the
// test says, refused requests included, with any Retry-After text (the project's stand-in checks
// what it is sent; this one only counts and times it).
import type { RequestListener } from 'node:http';

/** One request as the fake saw it. */
export interface Hit {
  /** When its body had arrived, in milliseconds since the epoch. */
  readonly atMs: number;
  readonly status: number;
  /** The `v:email-id` the sender set (multipart or urlencoded), or '?' without one. */
  readonly emailId: string;
}

/** What to answer the `n`-th request (0-based), which arrived at `nowMs`. */
export type MailgunAnswer = (
  n: number,
  nowMs: number,
) => { readonly status: number; readonly retryAfter?: string };

/** A request listener answering `answer(n)`, telling `record` of every request once it is read. */
export function recordingMailgun(
  answer: MailgunAnswer,
  record: (hit: Hit) => void,
): RequestListener {
  let n = 0;
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const atMs = Date.now();
      const body = Buffer.concat(chunks).toString('latin1');
      const emailId =
        /email-id"?\r?\n\r?\n([^\r\n]+)/.exec(body)?.[1] ??
        /v%3Aemail-id=([^&]+)/.exec(body)?.[1] ??
        '?';
      const a = answer(n++, atMs);
      record({ atMs, status: a.status, emailId: decodeURIComponent(emailId) });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (a.retryAfter !== undefined) headers['retry-after'] = a.retryAfter;
      res.writeHead(a.status, headers);
      res.end(
        a.status === 200
          ? JSON.stringify({ id: `<${atMs}.${n}@mg.example.com>`, message: 'Queued. Thank you.' })
          : JSON.stringify({ message: 'Too many requests' }),
      );
    });
  };
}
