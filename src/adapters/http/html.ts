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

// The one stylesheet, inline so a page is a single request; the CSP allows it by hash.
const STYLE = `
:root { color-scheme: light dark; --accent: #2457d6; --error: #b3261e; --ok: #1e7d32; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; padding: 2rem 1rem; }
main { max-width: 40rem; margin: 0 auto; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; overflow-wrap: anywhere; }
label { display: block; font-weight: 600; margin-top: 1rem; }
input, textarea { width: 100%; font: inherit; padding: .5rem; border: 1px solid #888; border-radius: 4px; }
textarea { min-height: 12rem; resize: vertical; }
input:focus, textarea:focus, button:focus { outline: 3px solid var(--accent); outline-offset: 1px; }
[aria-invalid="true"] { border-color: var(--error); }
button { margin-top: 1.25rem; font: inherit; padding: .6rem 1.4rem; border: 0; border-radius: 4px;
  background: var(--accent); color: #fff; cursor: pointer; }
.error { color: var(--error); margin: .25rem 0 0; }
.banner { border-left: 4px solid var(--error); padding: .5rem 1rem; margin-bottom: 1rem; }
.banner ul { margin: .25rem 0 0; padding-left: 1.2rem; }
.status { font-size: 1.2rem; font-weight: 600; }
.status-sent { color: var(--ok); }
.status-failed { color: var(--error); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #8884; vertical-align: top; }
.hint { color: #777; font-size: .9rem; }
.account { max-width: 40rem; margin: 0 auto 1rem; text-align: right; }
.account form { display: flex; gap: 1rem; justify-content: flex-end; align-items: center; flex-wrap: wrap; }
button.link { margin: 0; padding: .25rem .5rem; background: none; color: inherit; border: 1px solid #888; }
`;

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
}

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

export function layout({ title, body, head, account }: LayoutOptions): string {
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
${body}
</body>
</html>
`.value;
}
