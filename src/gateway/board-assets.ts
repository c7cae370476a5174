/** The board's stylesheet and its one script, served from /board/ (no inline script or style: see the CSP). */

// Colours chosen for contrast: body text 15:1, muted text 7:1, badge text at least 7:1 on its fill.
export const BOARD_CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1b1f23; background: #f6f8fa; }
a { color: #0550ae; } a:focus-visible, button:focus-visible, select:focus-visible, input:focus-visible {
  outline: 3px solid #bf3989; outline-offset: 2px; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .4rem; z-index: 2; }
.top { display: flex; gap: 1rem; align-items: center; padding: .6rem 1rem; background: #24292f; color: #fff; }
.top a.brand { color: #fff; font-weight: 600; text-decoration: none; } .top .who { flex: 1; }
.top button { font: inherit; }
nav.projects { display: flex; gap: 1rem; padding: .6rem 1rem; background: #fff; border-bottom: 1px solid #d0d7de; }
nav.projects a[aria-current] { font-weight: 700; color: #1b1f23; }
.filters { display: flex; flex-wrap: wrap; gap: 1rem; align-items: end; padding: .6rem 1rem; }
.filters label { display: flex; flex-direction: column; font-size: .85rem; color: #424a53; }
select, input, button { font: inherit; padding: .3rem .5rem; }
main { padding: 0 1rem 1rem; } h1 { font-size: 1.35rem; } h2 { font-size: 1rem; margin: .2rem 0 .5rem; }
#live { padding: 0 1rem; } .muted { color: #424a53; } .error { color: #a40e26; font-weight: 600; }
.epics { display: grid; gap: .3rem; max-width: 56rem; }
.epic { display: grid; grid-template-columns: 18rem 1fr 8rem; gap: .8rem; align-items: center; }
.epic progress { width: 100%; height: .9rem; accent-color: #1a7f37; }
.columns { display: grid; grid-template-columns: repeat(7, minmax(11rem, 1fr)); gap: .6rem; overflow-x: auto; margin-top: 1rem; }
.column { background: #eaeef2; border-radius: 6px; padding: .5rem; min-height: 6rem; min-width: 0; }
.cards { list-style: none; margin: 0; padding: 0; display: grid; gap: .5rem; }
.card { display: grid; gap: .25rem; background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem;
  color: #1b1f23; text-decoration: none; overflow-wrap: anywhere; }
.card:hover { border-color: #0550ae; } .card .num { font-weight: 700; } .holder { font-size: .85rem; color: #424a53; }
.badges { display: flex; flex-wrap: wrap; gap: .25rem; }
.badge { font-size: .78rem; border-radius: 999px; padding: 0 .5rem; border: 1px solid; }
.badge.lease { background: #ddf4ff; color: #0a3069; border-color: #54aeff; }
.badge.stalled { background: #fff8c5; color: #4d2d00; border-color: #d4a72c; }
.badge.rejected, .badge.violations { background: #ffebe9; color: #82071e; border-color: #ff8182; }
.chain { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: .1rem .4rem; font-size: .8rem; }
.chain li + li::before { content: '→ '; color: #424a53; } .chain .role { color: #424a53; }
.facts { display: grid; grid-template-columns: 9rem 1fr; gap: .3rem 1rem; max-width: 60rem; }
.facts dt { font-weight: 600; } .facts dd { margin: 0; overflow-wrap: anywhere; }
.timeline { list-style: none; padding: 0; max-width: 60rem; }
.entry { display: flex; flex-wrap: wrap; gap: .5rem; padding: .4rem .6rem; border-left: 4px solid #1a7f37; background: #fff;
  margin-bottom: .3rem; }
.entry.rejected { border-left-color: #cf222e; background: #fff5f5; }
.entry .outcome { font-weight: 700; text-transform: uppercase; font-size: .75rem; }
.entry.accepted .outcome { color: #116329; } .entry.rejected .outcome { color: #a40e26; }
.signin { max-width: 28rem; margin: 4rem auto; background: #fff; padding: 1.5rem; border: 1px solid #d0d7de; border-radius: 8px; }
.signin form { display: grid; gap: .5rem; }
`;

/**
 * Live updates: every few seconds, fetch the page's <main> again and swap it in when it changed.
 * The markup comes from the server's escaping templates; the element that had focus keeps it.
 */
export const BOARD_JS = `
(() => {
  const main = document.getElementById('main'), live = document.getElementById('live');
  if (!main || !main.dataset.live) return;
  const POLL_MS = 3000;
  let last = null;
  async function tick() {
    try {
      const res = await fetch(main.dataset.live, { credentials: 'same-origin', headers: { 'X-Board-Fragment': '1' } });
      if (res.status === 401) { location.reload(); return; }
      if (!res.ok) throw new Error('the server answered ' + res.status);
      const markup = await res.text();
      if (markup !== last) {
        const active = document.activeElement;
        const href = active && main.contains(active) ? active.getAttribute('href') : null;
        main.innerHTML = markup;
        if (href) { const again = main.querySelector('a[href="' + CSS.escape(href) + '"]'); if (again) again.focus(); }
        live.textContent = 'Updated at ' + new Date().toLocaleTimeString();
      }
      last = markup;
      main.dataset.polled = String(Date.now());
    } catch (err) {
      live.textContent = 'Live updates paused: ' + (err && err.message ? err.message : err);
    }
    setTimeout(tick, POLL_MS);
  }
  tick();
})();
`;
