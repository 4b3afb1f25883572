/**
 * The rules of the operator pages (dead letters, suppressions, webhooks: admin-pages.ts and the
 * page files of each), every one scoped to their `main.admin` so that no other page changes with
 * them. Text and fills come from base.ts's custom properties, which hold 4.5:1 in light and dark
 * mode (WCAG 2.2 SC 1.4.3); the one pair of our own is the destructive button's, `--bg` on
 * `--error`: 6.5:1 in light mode (#ffffff on #b3261e), 8.5:1 in dark (#16161a on #ff958c). Below
 * 40rem (so at 390 px, SC 1.4.10 Reflow) base.ts turns `table.stack` into one block per row;
 * here the button cell drops the label column that a row's other cells keep.
 */
export const ADMIN_STYLE = `
main.admin { max-width: 60rem; }
.admin h2 { margin-top: 2rem; }
.admin section > p:first-of-type { margin-top: .25rem; }
.admin select { width: 100%; font: inherit; padding: .5rem; border: 1px solid var(--border);
  border-radius: 4px; background: var(--bg); color: var(--fg); }
.admin .optional, .admin .note { color: var(--muted); font-weight: 400; }
.admin .note { font-size: .9rem; margin: .25rem 0; }
.admin .admin-form { max-width: 40rem; }
.admin .field { min-width: 0; }
.admin button.danger { background: var(--error); color: var(--bg); }
.admin button.small { margin: 0; padding: .3rem .8rem; }
.admin .actions { display: flex; flex-wrap: wrap; gap: 1rem 2rem; align-items: flex-end; }
.admin form.inline { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: flex-end; }
.admin form.inline label { margin: 0; flex-basis: 100%; }
.admin form.inline select { width: auto; max-width: 100%; }
.admin form.inline button { margin: 0; }
.admin dl.counts { grid-template-columns: max-content max-content; gap: .25rem 1.5rem; }
.admin dl.counts dd { font-variant-numeric: tabular-nums; }
.admin dl.letter { margin: 1rem 0; padding: .75rem 1rem; background: var(--surface); }
.admin .question { font-size: 1.1rem; }
.admin form.confirm { display: flex; flex-wrap: wrap; gap: 1rem 1.5rem; align-items: center;
  margin-top: 1.25rem; }
.admin form.confirm button { margin: 0; }
.admin fieldset.events { margin: 1rem 0 0; padding: .5rem 1rem; border: 1px solid var(--border);
  border-radius: 4px; min-width: 0; }
.admin fieldset.events legend { font-weight: 600; padding: 0 .25rem; }
.admin ul.checks { list-style: none; margin: 0; padding: 0; display: grid; gap: .25rem 1rem;
  grid-template-columns: repeat(auto-fill, minmax(min(100%, 11rem), 1fr)); }
.admin ul.checks li { display: flex; gap: .5rem; align-items: center; }
.admin ul.checks input { width: 1.15rem; height: 1.15rem; margin: 0; flex: none; }
.admin ul.checks label { margin: 0; font-weight: 400; }
.admin ul.plain { list-style: none; margin: 0; padding: 0; }
.admin ol.attempts { margin: 0; padding-left: 1.2rem; }
/* Headers break between words only ("Attempts", not "Atte mpts"): the body lets any word break
   anywhere, which would let the table squeeze a column to a letter's width. */
.admin .admin-table th { overflow-wrap: normal; }
.admin .admin-table td.number { font-variant-numeric: tabular-nums; }
.admin .admin-table td.action { white-space: nowrap; }
.admin .state-delivered { color: var(--ok); }
.admin .state-failed { color: var(--error); }
.admin ul.follow { padding-left: 1.2rem; }
.admin .follow-status { font-weight: 600; }
.admin .follow-status.status-sent, .admin .follow-status.status-delivered { color: var(--ok); }
.admin .follow-status.status-failed { color: var(--error); }
.admin .shown-once { margin: 1.5rem 0; padding: .75rem 1rem; border-left: 4px solid var(--accent);
  background: var(--surface); }
.admin .shown-once h2 { margin-top: 0; }
.admin textarea.shown-once-value { font-family: ui-monospace, monospace; min-height: 0; resize: none; }
.admin .pager { display: flex; flex-wrap: wrap; gap: 1.5rem; margin: 1rem 0; }
@media (min-width: 40.01rem) {
  .admin .admin-table td.id { white-space: nowrap; }
}
@media (max-width: 40rem) {
  .admin .admin-table td.action { display: block; padding: .25rem 0 .5rem; }
  .admin .admin-table td.action::before { content: none; }
}
`;
