/**
 * The rules of the list of emails (`/emails`, email-list-page.ts), every one scoped to its
 * `main.email-list` so that no other page changes with them. Text colours come from base.ts's
 * custom properties (`--fg`, `--muted`, `--error`, `--border`), which hold 4.5:1 in light and dark
 * mode (WCAG 2.2 SC 1.4.3); the badges carry their own pairs, each at least 7.7:1 in both modes.
 * Below 48rem (so at 390 px, SC 1.4.10 Reflow) the table becomes one block per email, each cell a
 * line labelled from its `data-label`, so that nothing scrolls sideways. The count of the list in
 * view is marked by a thicker edge and bold text, not by a colour (SC 1.4.1). No CSS comments: the
 * stylesheet is inline in every page, and a page must not look as if it showed a path.
 */
export const LIST_STYLE = `
main.email-list { max-width: 60rem; }
.email-list .email-filters .filter-fields { display: grid; gap: 0 1rem;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 17rem), 1fr)); }
.email-list .filter { min-width: 0; }
.email-list .filter-hint { color: var(--muted); font-size: .9rem; margin: .25rem 0 0; }
.email-list select { width: 100%; font: inherit; padding: .5rem; border: 1px solid var(--border);
  border-radius: 4px; background: var(--bg); color: var(--fg); }
.email-list .filter-actions { display: flex; flex-wrap: wrap; gap: 0 1.5rem; align-items: baseline; }
.email-list .status-counts ul { list-style: none; margin: 1.25rem 0 .5rem; padding: 0; display: flex;
  flex-wrap: wrap; gap: .5rem; }
.email-list .status-counts a { display: inline-flex; align-items: center; gap: .35rem;
  padding: .2rem .5rem; border: 1px solid var(--border); border-radius: 4px; color: var(--fg);
  text-decoration: none; }
.email-list .status-counts a:hover { text-decoration: underline; }
.email-list .status-counts a[aria-current] { font-weight: 700; border-width: 3px; padding: 0 .375rem; }
.email-list .count { font-variant-numeric: tabular-nums; }
.email-list .list-tools { margin: .5rem 0; display: flex; flex-wrap: wrap; gap: 0 1rem; }
.email-list .list-tools span { color: var(--muted); }
.email-list .badge { display: inline-block; padding: 0 .45rem; border-radius: 999px;
  font-size: .9rem; font-weight: 600; line-height: 1.6; white-space: nowrap; }
.email-list .badge-wait { background: #e8eefc; color: #1a3f9c; }
.email-list .badge-ok { background: #e6f4ea; color: #0d5323; }
.email-list .badge-bad { background: #fce8e6; color: #8c1d18; }
.email-list .badge-off { background: #ececec; color: #333333; }
@media (prefers-color-scheme: dark) {
  .email-list .badge-wait { background: #1b2a4f; color: #c5d4fb; }
  .email-list .badge-ok { background: #0f3d1c; color: #b7e4c3; }
  .email-list .badge-bad { background: #4a1512; color: #f6c7c2; }
  .email-list .badge-off { background: #3a3a3a; color: #eeeeee; }
}
.email-list .email-table th { overflow-wrap: normal; white-space: nowrap; }
.email-list .email-table td.wrap { overflow-wrap: anywhere; }
.email-list .email-table td.number { font-variant-numeric: tabular-nums; }
.email-list .email-table time { white-space: nowrap; }
.email-list .pager { display: flex; gap: 1.5rem; margin: 1rem 0; }
@media (max-width: 48rem) {
  .email-list .email-table thead { position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip-path: inset(50%); white-space: nowrap; }
  .email-list .email-table, .email-list .email-table tbody, .email-list .email-table tr {
    display: block; width: 100%; }
  .email-list .email-table tr { border-bottom: 1px solid var(--border); padding: .5rem 0; }
  .email-list .email-table td { display: grid; grid-template-columns: 6.5rem minmax(0, 1fr);
    gap: .75rem; border: 0; padding: .1rem 0; }
  .email-list .email-table td::before { content: attr(data-label); font-weight: 600; }
  .email-list .email-table .badge { justify-self: start; }
  .email-list .email-table time { white-space: normal; }
}
`;
