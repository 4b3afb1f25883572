import { expect } from 'chai';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { OPENAPI_DOCUMENT } from '../../../src/adapters/http/openapi.js';
import { statusJson, statusPage } from '../../../src/adapters/http/status-page.js';
import type { EmailStatus } from '../../../src/domain/email-status.js';
import { evolveStatus } from '../../../src/domain/email-status.js';
import type { DomainEvent } from '../../../src/domain/events.js';
import { aRequest, anEvent, at } from '../../support/builders.js';

const email = aRequest({ to: 'ada@example.org', requestedAt: 0 });
const events: readonly DomainEvent[] = [
  anEvent.requested(email),
  anEvent.sending(email, { at: at(1) }),
  anEvent.sent(email, { at: at(2), transport: 'mailgun' }),
  {
    type: 'EmailUnconfirmed',
    id: email.id,
    at: at(3603),
    to: email.to,
    subject: email.subject,
    transport: 'mailgun',
    deadlineMs: 3_600_000,
  },
];
const status = events.reduce<EmailStatus | undefined>(evolveStatus, undefined) as EmailStatus;

describe('An unconfirmed email on its page and in its JSON', () => {
  it('says so in the headline and in the history, and stays sent', () => {
    const html = statusPage(status);
    expect(html).to.include('Sent, unconfirmed: the provider accepted it');
    expect(html).to.include(
      '<strong>unconfirmed</strong> (worker): no report from mailgun on any recipient within 1h',
    );
    expect(html).to.include('<title>Email sent');
  });

  it('lists the line in events, with its source and detail, and not the transport', () => {
    const json = statusJson(status);
    expect(json.status).to.equal('sent');
    expect(json.events.at(-1)).to.deep.equal({
      at: at(3603),
      status: 'unconfirmed',
      source: 'worker',
      detail: 'no report from mailgun on any recipient within 1h',
    });
    expect(json).not.to.have.property('sentBy');
  });

  it('is what the OpenAPI document says the events of an email may hold', () => {
    const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
    addFormats.default(ajv);
    const schemas = JSON.parse(
      JSON.stringify(OPENAPI_DOCUMENT).replaceAll('"#/components/schemas/', '"doc#/$defs/'),
    ) as { components: { schemas: object } };
    ajv.addSchema({ $id: 'doc', $defs: schemas.components.schemas });
    const validate = ajv.compile({ $ref: 'doc#/$defs/EmailStatus' });
    expect(validate(statusJson(status)), JSON.stringify(validate.errors)).to.equal(true);
  });
});
