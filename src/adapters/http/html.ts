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

/**
 * The stylesheet as pages carry it: without its comments, which are for whoever edits the CSS
 * (each area's file may have some) and would only weigh down every page. No rule holds a comment
 * marker inside a string, so dropping everything from a marker to its end is safe.
 */
const SHIPPED_STYLE = STYLE.replace(/\/\*[\s\S]*?\*\//g, '');

/** The CSP's `style-src` source for the one inline stylesheet (see security.ts). */
export const STYLE_HASH = `sha256-${createHash('sha256').update(SHIPPED_STYLE).digest('base64')}`;
// Built once, outside any template a formatter might reflow: one changed space breaks the hash.
const STYLE_ELEMENT = new Html(`<style>${SHIPPED_STYLE}</style>`);

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
    : markup`<div class="account"><form method="post" action="/logout">
<input type="hidden" name="_csrf" value="${account.csrfToken}">
<span>Signed in as ${account.operator}</span>
<button type="submit" class="link">Sign out</button>
</form></div>`;

/** Where the skip link goes: the page's `<main>`, whatever page rendered it. */
export const MAIN_ID = 'main';

/**
 * Gives the body's first `<main>` the id the skip link points at, unless it has an id already
 * (then the skip link uses that one). Each page writes its own `<main>`: doing it here keeps the
 * link working on every page, whoever wrote it. `body` is our own markup, never user input.
 */
function withMainId(body: Html): { readonly body: Html; readonly id: string | undefined } {
  const tag = /<main\b[^>]*>/.exec(body.value);
  if (tag === null) return { body, id: undefined };
  const own = /\sid="([^"]*)"/.exec(tag[0]);
  if (own?.[1] !== undefined) return { body, id: own[1] };
  const named = tag[0].replace(/^<main/, `<main id="${MAIN_ID}"`);
  return {
    body: new Html(
      body.value.slice(0, tag.index) + named + body.value.slice(tag.index + tag[0].length),
    ),
    id: MAIN_ID,
  };
}

/**
 * The header: the navigation and the account bar in a `<header>` landmark, after a skip link to
 * the main content (WCAG 2.2 SC 2.4.1 Bypass Blocks) that shows when it takes focus. A page with
 * neither (the sign-in page) has no header and needs no skip link.
 */
function header(section: Section | undefined, account: Account | undefined, main?: string): Html {
  if (section === undefined && account === undefined) return markup``;
  return markup`${main !== undefined ? markup`<a class="skip" href="#${main}">Skip to main content</a>` : ''}
<header class="top">
${navigation(section)}
${accountBar(account)}
</header>`;
}

/** The favicon, `/favicon.svg` (see layout-routes.ts): the same file answers `/favicon.ico`. */
export const FAVICON_PATH = '/favicon.svg';
/** The script that shows each `<time>` in the reader's own time zone (see layout-routes.ts). */
export const LOCAL_TIME_SCRIPT_PATH = '/static/local-time.js';

/**
 * A whole page: `title` in `<title>`, the shared stylesheet, the favicon, the local-time script,
 * the header (skip link, navigation for `section`, account bar for `account`) and `body`, which
 * holds the page's own `<main>`.
 */
export function layout({ title, body, head, account, section }: LayoutOptions): string {
  const named = withMainId(body);
  return markup`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="${FAVICON_PATH}" type="image/svg+xml">
${STYLE_ELEMENT}
<script src="${LOCAL_TIME_SCRIPT_PATH}" defer></script>
${head}
</head>
<body>
${header(section, account, named.id)}
${named.body}
</body>
</html>
`.value;
}
