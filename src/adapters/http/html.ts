import { STYLE } from './styles/index.js';
import { createHash } from 'node:crypto';

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

/** Safe in element content and in quoted attribute values, which is everywhere we interpolate. */
export const escapeHtml = (value: string): string =>
  value.replace(/[&<>"'`]/g, (c) => ENTITIES[c] ?? c);

/**
 * Marks a string as already-rendered HTML, so that `markup` templates interpolate it as is while
 * every plain string is escaped: forgetting to escape then requires an explicit, visible act.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export type HtmlValue = Html | string | number | readonly HtmlValue[] | undefined | null | false;

const render = (value: HtmlValue): string => {
  if (value === undefined || value === null || value === false) return '';
  if (value instanceof Html) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
};

/** Tagged template: `markup\`<p>${userInput}</p>\`` escapes `userInput`. */
export function markup(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): Html {
  return new Html(
    strings.reduce((out, s, i) => out + s + (i < values.length ? render(values[i]) : ''), ''),
  );
}

export const STYLE_HASH = `sha256-${createHash('sha256').update(STYLE).digest('base64')}`;
// Built once, outside any template a formatter might reflow: one changed space breaks the hash.
const STYLE_ELEMENT = new Html(`<style>${STYLE}</style>`);

export interface LayoutOptions {
  readonly title: string;
  readonly body: Html;
  /** Extra elements for <head>, such as a refresh fallback for pages without JavaScript. */
  readonly head?: Html;
  /** The signed-in operator, for "Signed in as …" and the sign-out button (a CSRF-checked post). */
  readonly account?: Account;
  /**
   * The dashboard section this page belongs to: the navigation (Send, Emails, Dead letters,
   * Suppressions, Webhooks) is shown, with this one marked current. Absent: no navigation (the
   * sign-in page).
   */
  readonly section?: Section;
}

/** The sections of the dashboard, in the navigation's order. */
export const SECTIONS = [
  { id: 'send', href: '/', label: 'Send' },
  { id: 'emails', href: '/emails', label: 'Emails' },
  { id: 'dead-letters', href: '/dead-letters', label: 'Dead letters' },
  { id: 'suppressions', href: '/suppressions', label: 'Suppressions' },
  { id: 'webhooks', href: '/webhooks', label: 'Webhooks' },
] as const;
export type Section = (typeof SECTIONS)[number]['id'];

const navigation = (section: Section | undefined): Html | string =>
  section === undefined
    ? ''
    : markup`<nav class="sections" aria-label="Dashboard"><ul>${SECTIONS.map(
        (s) =>
          markup`<li><a href="${s.href}"${s.id === section ? markup` aria-current="page"` : ''}>${s.label}</a></li>`,
      )}</ul></nav>`;

export interface Account {
  readonly operator: string;
  readonly csrfToken: string;
}

const accountBar = (account: Account | undefined): Html | string =>
  account === undefined
    ? ''
    : markup`<header class="account">
<form method="post" action="/logout">
<input type="hidden" name="_csrf" value="${account.csrfToken}">
<span>Signed in as ${account.operator}</span>
<button type="submit" class="link">Sign out</button>
</form>
</header>`;

export function layout({ title, body, head, account, section }: LayoutOptions): string {
  return markup`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
${STYLE_ELEMENT}
${head}
</head>
<body>
${accountBar(account)}
${navigation(section)}
${body}
</body>
</html>
`.value;
}
