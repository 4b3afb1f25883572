// What the bare baselines share with the bench process, which prepares their work: no code of
// the project here, so that a baseline never measures us against ourselves.

/** The row a bare service keeps per email to deliver, filled before the consumer starts. */
export const BARE_DELIVERIES = `CREATE TABLE IF NOT EXISTS bare_deliveries (
  id text PRIMARY KEY,
  status text NOT NULL,
  updated_at timestamptz NOT NULL,
  request jsonb NOT NULL
)`;

/** The `Authorization` header of a Mailgun API call: Basic, user `api`, the key as password. */
export const mailgunAuthorization = (apiKey: string): string =>
  `Basic ${Buffer.from(`api:${apiKey}`).toString('base64')}`;

/** The urlencoded form our Mailgun sender posts for the bench's email, by hand. */
export function mailgunForm(from: string, to: string, subject: string, text: string, id: string) {
  const form = new URLSearchParams({ from, to, subject, text });
  form.append('h:Message-Id', `<${id}@bench.example.org>`);
  form.append('v:email-id', id);
  form.append('h:X-Email-Id', id);
  return form;
}
