import { Webhook } from 'standardwebhooks';
import type { WebhookSigner } from '../../application/ports/webhook-transport.js';

/**
 * Signs with the `standardwebhooks` package, the specification's own reference library
 * (https://github.com/standard-webhooks/standard-webhooks), so what receivers verify with the
 * same library matches by construction. One `Webhook` per secret is kept: decoding the secret
 * is the costly part and an endpoint signs every change.
 */
export class StandardWebhookSigner implements WebhookSigner {
  private readonly bySecret = new Map<string, Webhook>();

  sign(secret: string, id: string, timestamp: Date, body: string): string {
    let webhook = this.bySecret.get(secret);
    if (webhook === undefined) {
      webhook = new Webhook(secret);
      // Endpoints are few; a removed one's secret is simply dropped when the map is rebuilt.
      if (this.bySecret.size > 1000) this.bySecret.clear();
      this.bySecret.set(secret, webhook);
    }
    return webhook.sign(id, timestamp, body);
  }
}
