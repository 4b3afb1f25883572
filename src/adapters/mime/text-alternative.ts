import { convert } from 'html-to-text';
import type { EmailRequest } from '../../domain/email-request.js';

/**
 * The text part of an email: the sender's, or, for an html-only email, text made from its html
 * (html-to-text: links kept as "text [url]", images dropped), so that no transport sends an
 * html-only message, which spam filters score against.
 */
export function textAlternative(request: Pick<EmailRequest, 'text' | 'html'>): string | undefined {
  if (request.text !== undefined) return request.text;
  if (request.html === undefined) return undefined;
  return convert(request.html, {
    wordwrap: 78,
    selectors: [{ selector: 'img', format: 'skip' }],
  });
}
