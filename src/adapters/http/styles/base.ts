/**
 * The shared rules: colours, type, forms, buttons, tables, the header with the navigation and
 * the account bar. Every page has them; each area of the dashboard adds its own file next to this
 * one (see styles/index.ts).
 *
 * Colours are custom properties with one set per colour scheme (`prefers-color-scheme`), and the
 * page sets its own background and text colour, so no text depends on a browser default. Every
 * text colour is at least 4.5:1 against `--bg` and `--surface` in both schemes (WCAG 2.2 SC
 * 1.4.3), borders and the focus ring at least 3:1 (SC 1.4.11). Light: --fg 17.2:1 on --bg, --muted
 * 6.9:1, --accent 7.1:1 (links, buttons, the focus ring; --on-accent on it 7.1:1), --error 6.5:1,
 * --ok 6.6:1, --border 4.5:1; on --surface each is at least 4.1:1 (--border) and 5.9:1 (text).
 * Dark: --fg 15.3:1, --muted 8.8:1, --accent 9.5:1 (--on-accent on it 9.0:1), --error 8.5:1 (the
 * old #b3261e was 2.9:1 there), --ok 10.8:1, --border 5.3:1.
 *
 * The focus ring (SC 2.4.7) is 3 px of --accent with a 2 px offset, so it never merges with a
 * button of the same colour. An empty `.connection` takes no room but stays in the accessibility
 * tree: a live region that is there before its text changes is the one screen readers announce.
 *
 * At 390 px nothing is wider than the screen (SC 1.4.10 Reflow): the navigation wraps, long words
 * break, and tables become one block per row (`table.stack`, each cell labelled by its
 * `data-label`) inside a container that scrolls itself, never the page (`.table-scroll`). On a
 * wide screen a cell breaks between words only ("Attempt", not "Atte mpt"), except a `td.long`
 * (a provider's answer, a URL), which may break anywhere.
 *
 * No comments inside the stylesheet: it is inline in every page (and its hash is in the CSP).
 */
export const BASE_STYLE = `
:root { color-scheme: light dark;
  --bg: #ffffff; --surface: #f3f4f6; --fg: #1b1b1f;
  --muted: #595965;
  --accent: #1f4fc2;
  --on-accent: #ffffff;
  --error: #b3261e;
  --ok: #1d6b30;
  --border: #767680;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #16161a; --surface: #24242b; --fg: #ececf1;
    --muted: #b4b4c0;
    --accent: #9bbcff;
    --on-accent: #0c1a3a;
    --error: #ff958c;
    --ok: #7ddc8f;
    --border: #8a8a96;
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); color: var(--fg); }
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; padding: 0 1rem 2rem;
  background: var(--bg); color: var(--fg); overflow-wrap: anywhere; }
main { max-width: 40rem; margin: 0 auto; padding-top: 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
h2 { font-size: 1.25rem; margin: 1.5rem 0 .5rem; }
a { color: var(--accent); text-underline-offset: .15em; }
code { font-size: .95em; }
.visually-hidden { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
a:focus, button:focus, input:focus, textarea:focus, select:focus, summary:focus, [tabindex]:focus {
  outline: 3px solid var(--accent); outline-offset: 2px; }
.skip { position: absolute; left: 1rem; top: -10rem; z-index: 1; padding: .5rem 1rem;
  background: var(--bg); color: var(--accent); border: 1px solid var(--border); }
.skip:focus { top: .5rem; }
header.top { max-width: 60rem; margin: 0 auto; padding: .75rem 0; display: flex; flex-wrap: wrap;
  gap: .5rem 1.5rem; align-items: center; justify-content: space-between;
  border-bottom: 1px solid var(--border); }
nav.sections ul { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: .25rem; }
nav.sections a { display: inline-block; padding: .35rem .6rem; border-radius: 4px; }
nav.sections a[aria-current="page"] { color: var(--fg); font-weight: 700; text-decoration: none;
  box-shadow: inset 0 -3px 0 var(--accent); }
.account form { display: flex; gap: .5rem 1rem; align-items: center; flex-wrap: wrap; margin: 0; }
label { display: block; font-weight: 600; margin-top: 1rem; }
input, textarea { width: 100%; font: inherit; padding: .5rem; border: 1px solid var(--border);
  border-radius: 4px; background: var(--bg); color: var(--fg); }
textarea { min-height: 12rem; resize: vertical; }
[aria-invalid="true"] { border-color: var(--error); border-width: 2px; }
button { margin-top: 1.25rem; font: inherit; padding: .6rem 1.4rem; border: 0; border-radius: 4px;
  background: var(--accent); color: var(--on-accent); cursor: pointer; }
button.link { margin: 0; padding: .25rem .5rem; background: transparent; color: var(--fg);
  border: 1px solid var(--border); }
.error { color: var(--error); margin: .25rem 0 0; font-weight: 600; }
.banner { border-left: 4px solid var(--error); padding: .5rem 1rem; margin-bottom: 1rem;
  background: var(--surface); color: var(--fg); }
.banner h2 { margin: 0 0 .25rem; font-size: 1.1rem; }
.banner ul { margin: .25rem 0 0; padding-left: 1.2rem; }
.banner p { margin: .25rem 0; }
.notice { border-left: 4px solid var(--accent); padding: .5rem 1rem; margin: 0 0 1rem;
  background: var(--surface); color: var(--fg); }
.connection { border-left: 4px solid var(--error); padding: .5rem 1rem; margin: 0 0 1rem;
  background: var(--surface); color: var(--fg); font-weight: 600; }
.connection:empty { padding: 0; margin: 0; border: 0; }
.status { font-size: 1.2rem; font-weight: 600; }
.status-sent, .status-delivered { color: var(--ok); }
.status-failed, .status-bounced, .status-complained { color: var(--error); }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; min-width: 0; }
.hint { color: var(--muted); font-size: .9rem; margin: .25rem 0; }
.table-scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--border);
  vertical-align: top; overflow-wrap: normal; }
td.long { overflow-wrap: anywhere; }
time { white-space: nowrap; }
@media (max-width: 40rem) {
  dl { grid-template-columns: minmax(0, 1fr); gap: 0; }
  dd { margin-bottom: .5rem; }
  table.stack, table.stack tbody, table.stack tr, table.stack td { display: block; width: 100%; }
  table.stack thead { position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip: rect(0 0 0 0); }
  table.stack tr { border-bottom: 1px solid var(--border); padding: .25rem 0; }
  table.stack td { border: 0; padding: .1rem 0; display: grid;
    grid-template-columns: 6rem minmax(0, 1fr); gap: .5rem; overflow-wrap: anywhere; }
  table.stack td::before { content: attr(data-label); font-weight: 600; }
  time { white-space: normal; }
}
`;
