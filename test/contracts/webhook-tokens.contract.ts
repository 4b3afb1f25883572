// One suite for every WebhookTokens store, through the rules of the port's doc comment.
import { expect } from 'chai';
import type { WebhookTokens } from '../../src/application/ports/webhook-tokens.js';
import { WEBHOOK_TOKEN_MEMORY_MS } from '../../src/application/ports/webhook-tokens.js';
import { anId, later } from '../support/builders.js';
import { right } from './email-log.contract.js';

export interface WebhookTokensFixture {
  readonly tokens: WebhookTokens;
  /** The same store as another server sees it (its own connections); in memory, the same one. */
  readonly peer: WebhookTokens;
  close(): Promise<void>;
}

/** A token no other test uses; Mailgun's are 50 random characters. */
const aToken = (): string => `token-${anId('w')}`.padEnd(50, 'x');

export function webhookTokensContract(
  name: string,
  open: () => Promise<WebhookTokensFixture>,
): void {
  describe(`${name} honours the WebhookTokens contract`, function () {
    this.timeout(30_000);
    let fx: WebhookTokensFixture;

    beforeEach(async () => {
      fx = await open();
    });
    afterEach(async () => {
      await fx.close();
    });

    it('answers true the first time a token is seen, and false after, on every server', async () => {
      const token = aToken();
      expect(await right(fx.tokens.remember(token, later(0)))).to.equal(true);
      expect(await right(fx.tokens.remember(token, later(1000)))).to.equal(false);
      expect(await right(fx.peer.remember(token, later(2000)))).to.equal(false);
      expect(await right(fx.tokens.remember(aToken(), later(3000)))).to.equal(true);
    });

    it('gives a token to exactly one of many servers that see it at once', async () => {
      const token = aToken();
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          right((i % 2 === 0 ? fx.tokens : fx.peer).remember(token, later(i))),
        ),
      );
      expect(answers.filter((first) => first)).to.have.length(1);
    });

    it('remembers a token for its whole time, and forgets it after as others come in', async () => {
      const token = aToken();
      await right(fx.tokens.remember(token, later(0)));
      expect(await right(fx.tokens.remember(token, later(WEBHOOK_TOKEN_MEMORY_MS)))).to.equal(
        false,
      );
      await right(fx.peer.remember(aToken(), later(WEBHOOK_TOKEN_MEMORY_MS + 1)));
      expect(await right(fx.tokens.remember(token, later(WEBHOOK_TOKEN_MEMORY_MS + 2)))).to.equal(
        true,
      );
    });

    it('takes a forgotten token as new, and forgets an unknown one without complaint', async () => {
      const token = aToken();
      await right(fx.tokens.remember(token, later(0)));
      await right(fx.peer.forget(token));
      expect(await right(fx.tokens.remember(token, later(1000)))).to.equal(true);
      await right(fx.tokens.forget(aToken()));
    });
  });
}
