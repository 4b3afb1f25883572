/**
 * The rules of an email's page (`/emails/{id}`): its message (email-message.ts), its actions and
 * their confirmation pages. Text colours come from base.ts's custom properties (`--fg`,
 * `--muted`, `--accent`, `--error`, `--surface`, `--border`), which hold 4.5:1 in light and dark
 * mode (WCAG 2.2 SC 1.4.3); the cancel button's text is the page's own background on `--error`
 * (6.5:1 light, 8.5:1 dark). At 390 px nothing widens the page (SC 1.4.10 Reflow): the text part
 * wraps, even inside a word, and the html part scrolls inside its own frame.
 *
 * The html part's frame is white and `color-scheme: light` in either mode: the email's own
 * document paints as a mail program shows it (a document framed in another colour scheme would
 * get an opaque backdrop of that scheme's colour instead). No CSS comments: the stylesheet is in
 * every page, and the no-leaks test reads every `/…` in a page as a path.
 */
export const EMAIL_STYLE = `
section.message h3 { font-size: 1.05rem; margin: 1.25rem 0 .5rem; }
.message-note { color: var(--muted); font-size: .9rem; }
p.message-note { margin: .25rem 0 .5rem; }
.message-frame { display: block; width: 100%; height: 24rem; border: 1px solid var(--border);
  border-radius: 4px; background: #ffffff; color-scheme: light; }
.message-text { margin: 0; padding: .75rem; max-width: 100%; max-height: 30rem; overflow-y: auto;
  white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word;
  font: .9rem/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--surface); color: var(--fg); border: 1px solid var(--border); border-radius: 4px; }
.message-files { padding-left: 1.2rem; margin: .25rem 0; }
.message-files li { margin: .25rem 0; }
.file-name { font-weight: 600; }
.email-relation { margin: .5rem 0; font-weight: 600; }
.action-list { list-style: none; margin: 0; padding: 0; display: grid; gap: .75rem; }
.action-link { display: inline-block; margin-right: .5rem; padding: .35rem .9rem;
  border: 1px solid var(--accent); border-radius: 4px; font-weight: 600; }
.confirm-form { display: flex; flex-wrap: wrap; gap: .75rem 1.5rem; align-items: center;
  margin-top: 1.25rem; }
.confirm-form button { margin-top: 0; }
button.danger { background: var(--error); color: var(--bg); }
.tags { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: .25rem .5rem; }
.tags li { border: 1px solid currentColor; border-radius: 999px; padding: 0 .6rem; }
dl.metadata { margin: 0; }
`;
