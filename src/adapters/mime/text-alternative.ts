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
  let text: string;
  try {
    text = convert(request.html, {
      wordwrap: 78,
      selectors: [{ selector: 'img', format: 'skip' }],
    });
  } catch {
    // html-to-text walks the tree by recursion: html nested a few thousand deep overflows the
    // stack. The email was accepted and must still go out, with a plainer text part.
    return strippedText(request.html);
  }
  // A few bytes of html may stand for a long line of text (`<hr>` is 78 dashes): the size
  // accepted at the API counts the generated part as large as the html, and it must not be more.
  return octets(text) <= octets(request.html) ? text : strippedText(request.html);
}

const octets = (s: string): number => Buffer.byteLength(s, 'utf8');

const ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
};

/**
 * The html's text without its tags, in one linear pass: never longer than the html, never
 * recursive. Block-level ends become line breaks so paragraphs stay apart.
 */
function strippedText(html: string): string {
  return html
    .replace(/<(script|style)\b[^>]*>[^]*?<\/\1\s*>/gi, '')
    .replace(/<\/?(p|div|br|li|tr|h[1-6]|table|ul|ol|blockquote|hr)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(amp|lt|gt|quot|apos|nbsp);/g, (_, name: string) => ENTITIES[name] ?? '')
    .replace(/[ \t]+/g, ' ')
    .replace(/\n\s*\n+/g, '\n\n')
    .trim();
}
