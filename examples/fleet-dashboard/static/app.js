// The fleet dashboard: it asks its own server for /api/fleet, draws the
// answer, and asks again after the number of seconds the answer says. It
// never talks to Keyplane and holds no credential.
'use strict';

(() => {
  const fallbackRefreshSeconds = 5;
  const counts = document.querySelectorAll('[data-count]');
  const rows = document.querySelector('#recent tbody');
  const empty = document.getElementById('empty');
  const updated = document.getElementById('updated');
  let timer;

  // ago says how long before `now` a time was, in words.
  function ago(then, now) {
    const seconds = Math.max(0, Math.round((now - then) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 48) return `${hours} h ago`;
    return `${Math.round(hours / 24)} days ago`;
  }

  function cell(...children) {
    const td = document.createElement('td');
    td.append(...children);
    return td;
  }

  // render draws one answer. Names go in as text, never as HTML.
  function render(fleet) {
    const now = new Date(fleet.generatedAt);
    for (const el of counts) {
      el.textContent = String(fleet.counts[el.dataset.count] ?? 0);
    }
    rows.replaceChildren(...fleet.recent.map((device) => {
      const status = document.createElement('span');
      status.className = `status ${device.status.toLowerCase()}`;
      status.textContent = device.status;
      const seen = document.createElement('time');
      seen.dateTime = device.lastSeenAt;
      seen.title = new Date(device.lastSeenAt).toLocaleString();
      seen.textContent = ago(new Date(device.lastSeenAt), now);
      const tr = document.createElement('tr');
      tr.append(cell(device.name), cell(status), cell(seen));
      return tr;
    }));
    empty.hidden = fleet.recent.length > 0;
    updated.textContent = `Updated at ${now.toLocaleTimeString()}`;
    updated.classList.remove('error');
  }

  async function refresh() {
    clearTimeout(timer);
    let wait = fallbackRefreshSeconds;
    try {
      const res = await fetch('api/fleet', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      const body = await res.json();
      if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
      render(body);
      wait = body.refreshSeconds || wait;
    } catch (err) {
      updated.textContent = `Could not refresh (${err.message.replace(/\.$/, '')}). The figures below may be out of date.`;
      updated.classList.add('error');
    }
    if (!document.hidden) timer = setTimeout(refresh, wait * 1000);
  }

  // A hidden tab stops asking, and asks at once when shown again.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  refresh();
})();
