/**
 * The outgoing webhooks as a page (`GET /webhooks` for a browser): the endpoints with a remove
 * button each (through a confirmation page), a form to add one (whose answer shows the new
 * signing secret, once), and the recent deliveries across every endpoint. The routes are in
 * webhook-routes.ts.
 */
import type { WebhookDelivery } from '../../application/ports/webhook-deliveries.js';
import type { WebhookEndpoint } from '../../application/ports/webhook-endpoints.js';
import { STATUS_NAMES } from '../../domain/email-status.js';
import type { Confirmation } from './admin-pages.js';
import { noticeBlock, scrollingTable, timeOf } from './admin-pages.js';
import type { Account, Html } from './html.js';
import { layout, markup } from './html.js';

/** Deliveries the page shows, newest first. */
export const RECENT_DELIVERIES = 50;

/** The add form after a refusal: what was typed, and the use case's message by field. */
export interface WebhookForm {
  readonly url: string;
  /** The ticked statuses (`sent`, `bounced`, …). */
  readonly events: readonly string[];
  readonly errors: Readonly<Partial<Record<'url' | 'events' | 'form', string>>>;
}

export interface WebhooksView {
  readonly endpoints: readonly WebhookEndpoint[];
  /** Newest first; undefined when the store did not answer (the page says so). */
  readonly deliveries: readonly WebhookDelivery[] | undefined;
  /** False where deliveries are not served: no section. */
  readonly showDeliveries: boolean;
  readonly notice?: string;
  readonly form?: WebhookForm;
  readonly csrfToken: string;
  /** The one-time key of this rendering of the add form (see webhook-routes.ts). */
  readonly nonce: string;
  readonly account?: Account;
}

const eventsOf = (events: readonly string[]): Html | string =>
  events.length === 0
    ? 'every event'
    : markup`<ul class="plain">${events.map((e) => markup`<li><code>${e}</code></li>`)}</ul>`;

function endpointsTable(endpoints: readonly WebhookEndpoint[]): Html {
  if (endpoints.length === 0) return markup`<p>No endpoint yet: add one below.</p>`;
  const rows = endpoints.map(
    (e) => markup`<tr>
<td data-label="Id" class="id"><code>${e.id}</code></td>
<td data-label="URL" class="wrap">${e.url}</td>
<td data-label="Events">${eventsOf(e.events)}</td>
<td data-label="Added">${timeOf(e.createdAt)}</td>
<td class="action"><form method="get" action="/webhooks/remove"><input type="hidden" name="id" value="${e.id}"><button type="submit" class="small danger">Remove<span class="visually-hidden"> ${e.id}</span></button></form></td>
</tr>`,
  );
  return scrollingTable(
    'endpoints-heading',
    markup`<table class="admin-table stack">
<thead><tr><th scope="col">Id</th><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Added</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody>${rows}</tbody>
</table>`,
  );
}

function addForm(view: WebhooksView): Html {
  const { form } = view;
  const ticked = new Set(form?.events ?? []);
  const error = (name: 'url' | 'events'): Html => {
    const message = form?.errors[name];
    return message === undefined
      ? markup``
      : markup`<p class="error" id="webhook-${name}-error">${message}</p>`;
  };
  const invalid = (name: 'url'): Html =>
    form?.errors[name] === undefined
      ? markup``
      : markup` aria-invalid="true" aria-describedby="webhook-${name}-error"`;
  const boxes = STATUS_NAMES.map(
    (status) =>
      markup`<li><input type="checkbox" id="event-${status}" name="events" value="${status}"${ticked.has(status) ? markup` checked` : ''}><label for="event-${status}"><code>email.${status}</code></label></li>`,
  );
  const problems = Object.values(form?.errors ?? {}).filter(
    (m): m is string => typeof m === 'string',
  );
  const summary =
    problems.length === 0
      ? markup``
      : markup`<div class="banner" role="alert"><p>The endpoint was not added:</p><ul>${problems.map((m) => markup`<li>${m}</li>`)}</ul></div>`;
  return markup`<section aria-labelledby="add-heading">
<h2 id="add-heading">Add an endpoint</h2>
${summary}
<form method="post" action="/webhooks/add" class="admin-form">
<input type="hidden" name="_csrf" value="${view.csrfToken}">
<input type="hidden" name="_nonce" value="${view.nonce}">
<div class="field">
<label for="webhook-url">URL</label>
${error('url')}
<input id="webhook-url" name="url" type="text" inputmode="url" autocomplete="off" spellcheck="false" required value="${form?.url ?? ''}"${invalid('url')}>
</div>
<fieldset class="events"${form?.errors.events === undefined ? '' : markup` aria-describedby="webhook-events-error"`}>
<legend>Events <span class="optional">(none ticked: every event)</span></legend>
${error('events')}
<ul class="checks">${boxes}</ul>
</fieldset>
<button type="submit">Add endpoint</button>
</form>
</section>`;
}

const STATES: Readonly<Record<WebhookDelivery['state'], string>> = {
  pending: 'pending',
  delivered: 'delivered',
  failed: 'failed: out of attempts',
};

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

function deliveriesBlock(view: WebhooksView): Html {
  if (!view.showDeliveries) return markup``;
  const { deliveries } = view;
  const content =
    deliveries === undefined
      ? markup`<p>The recent deliveries could not be read just now; reload the page to try again.</p>`
      : deliveries.length === 0
        ? markup`<p>Nothing was delivered yet.</p>`
        : scrollingTable(
            'deliveries-heading',
            markup`<table class="admin-table stack">
<thead><tr><th scope="col">Time</th><th scope="col">Event</th><th scope="col">Email</th><th scope="col">Endpoint</th><th scope="col">State</th><th scope="col">Attempts</th></tr></thead>
<tbody>${deliveries.map((d) => {
              const attempts = d.attempts.map(
                (a) =>
                  markup`<li>${a.statusCode !== undefined ? `HTTP ${a.statusCode}` : (a.error ?? 'no answer')} at ${timeOf(a.at)} (${seconds(a.durationMs)})</li>`,
              );
              return markup`<tr>
<td data-label="Time">${timeOf(d.createdAt)}</td>
<td data-label="Event"><code>${d.type}</code></td>
<td data-label="Email"><a href="/emails/${d.emailId}"><code>${d.emailId}</code></a></td>
<td data-label="Endpoint" class="wrap">${d.url}</td>
<td data-label="State" class="state-${d.state}">${STATES[d.state]}</td>
<td data-label="Attempts"><div>${attempts.length > 0 ? markup`<ol class="attempts">${attempts}</ol>` : 'not tried yet'}${d.state === 'pending' && d.nextAttemptAt !== undefined ? markup`<p class="note">Next try ${timeOf(d.nextAttemptAt)}</p>` : ''}</div></td>
</tr>`;
            })}</tbody>
</table>`,
          );
  return markup`<section aria-labelledby="deliveries-heading">
<h2 id="deliveries-heading">Recent deliveries</h2>
${content}
</section>`;
}

/** `GET /webhooks` for a browser (and the add form's answer when it was refused). */
export function webhooksPage(view: WebhooksView): string {
  const body = markup`<main class="admin">
<h1>Webhooks</h1>
<p>Every change of an email’s status is POSTed, signed (Standard Webhooks), to each endpoint that subscribed to it, and tried again until the receiver answers 2xx or the retries are over.</p>
${noticeBlock(view.notice)}
<section aria-labelledby="endpoints-heading">
<h2 id="endpoints-heading">Endpoints</h2>
${endpointsTable(view.endpoints)}
</section>
${addForm(view)}
${deliveriesBlock(view)}
</main>`;
  return layout({
    title: view.form !== undefined ? 'Webhooks: endpoint not added' : 'Webhooks',
    body,
    section: 'webhooks',
    ...(view.account ? { account: view.account } : {}),
  });
}

/**
 * The answer to the add form: the new endpoint and its signing secret, the one time it is
 * shown (it is not kept anywhere a page could show it again).
 */
export function createdPage(
  endpoint: WebhookEndpoint,
  secret: string,
  account: Account | undefined,
): string {
  const body = markup`<main class="admin">
<h1>Webhook endpoint added</h1>
<dl class="letter">
<dt>Id</dt><dd><code>${endpoint.id}</code></dd>
<dt>URL</dt><dd>${endpoint.url}</dd>
<dt>Events</dt><dd>${eventsOf(endpoint.events)}</dd>
</dl>
<section class="shown-once" aria-labelledby="secret-heading">
<h2 id="secret-heading">Its signing secret</h2>
<p><strong>Copy it now.</strong> It is shown this once: it is never shown again, here or anywhere else. The receiver needs it to check each webhook’s signature. If it is lost, remove the endpoint and add it again.</p>
<label for="webhook-secret">Signing secret</label>
<textarea id="webhook-secret" class="shown-once-value" rows="2" readonly autocomplete="off" spellcheck="false">${secret}</textarea>
</section>
<p><a href="/webhooks">Done: back to the webhooks</a></p>
</main>`;
  return layout({
    title: 'Webhook endpoint added',
    body,
    section: 'webhooks',
    ...(account ? { account } : {}),
  });
}

/** The confirmation of removing an endpoint: its URL and what it gets, so the right one goes. */
export function removeEndpointConfirmation(endpoint: WebhookEndpoint): Confirmation {
  return {
    title: 'Remove a webhook endpoint',
    question: 'Remove this endpoint? Nothing more is sent to it; its past deliveries stay listed.',
    details: markup`<dl class="letter">
<dt>Id</dt><dd><code>${endpoint.id}</code></dd>
<dt>URL</dt><dd>${endpoint.url}</dd>
<dt>Events</dt><dd>${eventsOf(endpoint.events)}</dd>
</dl>`,
    action: '/webhooks/remove',
    hidden: { id: endpoint.id },
    button: 'Remove this endpoint',
    destructive: true,
    cancel: { href: '/webhooks', label: 'Cancel: keep it' },
  };
}
