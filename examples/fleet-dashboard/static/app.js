// The fleet dashboard: it asks its own server for /api/fleet, draws the
// answer, and asks again after the number of seconds the answer says. It
// also follows its server's /events, which pushes each device status change
// and the figures read again after it, so that the page changes in place as
// devices come and go. It never talks to Keyplane and holds no credential.
'use strict';

(() => {
  const fallbackRefreshSeconds = 5;
  const maxChanges = 10;
  const counts = document.querySelectorAll('[data-count]');
  const rows = document.querySelector('#recent tbody');
  const empty = document.getElementById('empty');
  const updated = document.getElementById('updated');
  const live = document.getElementById('live');
  const changes = document.getElementById('changes');
  const noChanges = document.getElementById('no-changes');
  let timer;
  let shown = 0; // generatedAt of the figures shown, in ms

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

  function statusBadge(status) {
    const span = document.createElement('span');
    span.className = `status ${status.toLowerCase()}`;
    span.textContent = status;
    return span;
  }

  // render draws one answer, from /api/fleet or pushed over /events,
  // unless newer figures are already shown. Names go in as text, never as
  // HTML.
  function render(fleet) {
    const now = new Date(fleet.generatedAt);
    if (now.getTime() < shown) return;
    shown = now.getTime();
    for (const el of counts) {
      el.textContent = String(fleet.counts[el.dataset.count] ?? 0);
    }
    rows.replaceChildren(...fleet.recent.map((device) => {
      const seen = document.createElement('time');
      seen.dateTime = device.lastSeenAt;
      seen.title = new Date(device.lastSeenAt).toLocaleString();
      seen.textContent = ago(new Date(device.lastSeenAt), now);
      const tr = document.createElement('tr');
      tr.append(cell(device.name), cell(statusBadge(device.status)), cell(seen));
      return tr;
    }));
    empty.hidden = fleet.recent.length > 0;
    updated.textContent = `Updated at ${now.toLocaleTimeString()}`;
    updated.classList.remove('error');
  }

  // noteChange adds a device's status change at the top of the list of
  // changes, which keeps the last few.
  function noteChange(change) {
    const at = document.createElement('time');
    at.dateTime = change.at;
    at.textContent = new Date(change.at).toLocaleTimeString();
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = change.name;
    const li = document.createElement('li');
    li.append(at, name, statusBadge(change.status));
    changes.prepend(li);
    while (changes.children.length > maxChanges) changes.lastElementChild.remove();
    noChanges.hidden = true;
  }

  function showLive(on) {
    live.textContent = on ? 'Live' : 'Not live';
    live.className = `live ${on ? 'on' : 'off'}`;
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

  // The pushed events. When the stream breaks, EventSource reconnects by
  // itself, sending the id of the last change it got (Last-Event-ID), and
  // the server sends the changes it missed. The page stays subscribed
  // while hidden: an event costs next to nothing, unlike a reading.
  const events = new EventSource('events');
  events.addEventListener('fleet', (e) => render(JSON.parse(e.data)));
  events.addEventListener('device', (e) => noteChange(JSON.parse(e.data)));
  events.addEventListener('live', (e) => showLive(JSON.parse(e.data).live));
  events.addEventListener('error', () => showLive(false));

  // A hidden tab stops asking, and asks at once when shown again.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  });
  refresh();
})();
