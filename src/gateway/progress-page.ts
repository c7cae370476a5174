/**
 * GET /: a small read-only progress page. The API key is typed once and kept in the browser's
 * session storage; everything shown comes from the same API any client uses. Data is written
 * with textContent only, never as HTML.
 */
const escapeAttr = (value: string) => value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export function progressPage(temporalUiUrl: string, namespace: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>custody · progress</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 960px; color: #1b1f23; padding: 0 1rem; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; } h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
  .epic { display: grid; grid-template-columns: 16rem 1fr 7rem; gap: .8rem; align-items: center; margin: .35rem 0; }
  .bar { background: #e7eaee; border-radius: 4px; height: .9rem; overflow: hidden; }
  .bar > span { display: block; height: 100%; background: #2da44e; }
  .muted { color: #57606a; } ul { padding-left: 1.2rem; } li { margin: .2rem 0; }
  form { display: flex; gap: .5rem; } input { flex: 1; padding: .4rem; font: inherit; } button { font: inherit; padding: .4rem .8rem; }
  .error { color: #cf222e; } [hidden] { display: none !important; }
</style>
</head>
<body data-temporal-ui="${escapeAttr(temporalUiUrl)}" data-namespace="${escapeAttr(namespace)}">
<h1>custody · progress</h1>
<form id="login" hidden>
  <input id="key" type="password" placeholder="API key (cust_...)" autocomplete="off" aria-label="API key">
  <button type="submit">Show progress</button>
</form>
<p id="status" class="muted"></p>
<main id="projects"></main>
<script>
(() => {
  const ui = document.body.dataset.temporalUi, ns = document.body.dataset.namespace;
  const $ = (tag, text, cls) => { const el = document.createElement(tag); if (text !== undefined) el.textContent = text; if (cls) el.className = cls; return el; };
  const status = document.getElementById('status'), login = document.getElementById('login'), main = document.getElementById('projects');
  async function api(path) {
    const res = await fetch('/api/v1' + path, { headers: { authorization: 'Bearer ' + sessionStorage.getItem('custody.key') } });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ? body.error.code + ': ' + body.error.message : String(res.status));
    return body.data;
  }
  function storyList(title, stories) {
    const section = $('div'); section.append($('h3', title + ' (' + stories.length + ')'));
    if (stories.length === 0) { section.append($('p', 'none', 'muted')); return section; }
    const list = $('ul');
    for (const s of stories) {
      const li = $('li'); const link = $('a', s.number + ' ' + s.title);
      link.href = ui + '/namespaces/' + encodeURIComponent(ns) + '/workflows/' + encodeURIComponent(s.workflow_id);
      link.target = '_blank'; link.rel = 'noopener';
      li.append(link, $('span', ' · ' + s.agent_status + ' / ' + s.verified_status, 'muted')); list.append(li);
    }
    section.append(list); return section;
  }
  async function show() {
    status.textContent = 'Loading…'; main.replaceChildren();
    try {
      const projects = await api('/projects');
      for (const p of projects) {
        const [progress, ready, stalled] = await Promise.all([
          api('/projects/' + p.id + '/progress'),
          api('/stories/ready?limit=50&project_id=' + p.id),
          api('/stories?stalled=true&limit=50&project_id=' + p.id),
        ]);
        const section = $('section'); section.dataset.project = p.slug;
        const t = progress.total;
        section.append($('h2', p.name), $('p', t.verified + ' of ' + t.total + ' stories verified (' + t.percent_verified + '%)', 'total'));
        for (const e of progress.epics) {
          const row = $('div', undefined, 'epic'); row.dataset.epic = String(e.number);
          const bar = $('div', undefined, 'bar'); const fill = $('span'); fill.style.width = e.percent_verified + '%'; bar.append(fill);
          row.append($('span', 'Epic ' + e.number + ' · ' + e.title), bar, $('span', e.verified + '/' + e.total + ' verified', 'count'));
          section.append(row);
        }
        section.append(storyList('Ready', ready), storyList('Stalled', stalled));
        main.append(section);
      }
      status.textContent = projects.length ? '' : 'No projects yet.';
    } catch (err) {
      status.textContent = String(err.message || err); status.className = 'error';
      if (/unauthorized/.test(status.textContent)) { sessionStorage.removeItem('custody.key'); login.hidden = false; }
    }
  }
  login.addEventListener('submit', (e) => { e.preventDefault(); sessionStorage.setItem('custody.key', document.getElementById('key').value.trim()); login.hidden = true; show(); });
  if (sessionStorage.getItem('custody.key')) show(); else login.hidden = false;
})();
</script>
</body>
</html>`;
}
