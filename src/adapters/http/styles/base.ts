/**
 * The shared rules: type, forms, buttons, tables, the navigation and the account bar. Every page
 * has them; each area of the dashboard adds its own file next to this one (see styles/index.ts).
 */
export const BASE_STYLE = `
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
