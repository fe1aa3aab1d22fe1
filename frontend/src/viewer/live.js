/**
 * Others' edits as they happen, and who else has the volume open: the volume's live socket
 * (ws/volumes/<id>/live/, annotation/consumers.py).
 *
 * A label version made elsewhere (another person, another window, a job) is added to the
 * version list at once and announced in #live-notice with who did what and a one-click
 * "Show vN" (the overlay keeps the tiles the edit did not touch when the version on screen
 * is its parent). The viewer's own edits are not announced: it shows their result already.
 *
 * Presence: each socket of the volume says join / here / leave; this page pings every 15 s
 * (the server tells the others it is still here) and forgets a socket not heard from for
 * 45 s, so a viewer whose connection died without a word disappears too. #presence lists the
 * other people (a person with two windows open counts once).
 */

import { keepSocket } from '../shared/socket.js';

const PING_MS = 15000;
const FORGET_MS = 45000;

export function makeLivePanel({ config, state, elements, addVersion, showVersion }) {
  const me = config.user;
  const sockets = new Map(); // socket id -> { user, seen }
  let mySocket = null;
  let pingTimer = null;
  let pending = null; // the newest version announced and not shown yet
  let greeted = false; // a hello after the first is a reconnection

  const number = (name) => Number(String(name ?? 'v0').slice(1));

  function renderPresence() {
    const now = Date.now();
    for (const [id, entry] of sockets) if (now - entry.seen > FORGET_MS) sockets.delete(id);
    const others = [...new Set([...sockets.values()].map((e) => e.user))].sort();
    const mine = [...sockets.values()].some((e) => e.user === me);
    const names = others.filter((u) => u !== me);
    const parts = names.length ? [`Also here: ${names.join(', ')}`] : ['Nobody else has this volume open.'];
    if (mine) parts.push('(you, in another window too)');
    elements.presence.textContent = parts.join(' ');
    elements.presence.dataset.users = names.join(',');
  }

  function renderNotice() {
    if (pending === null || number(pending.name) <= number(state.version)) {
      elements.notice.hidden = true;
      pending = null;
      return;
    }
    const newer = pending.count > 1 ? ` (${pending.count} new versions)` : '';
    elements.text.textContent = `${pending.what}: ${pending.name} is the latest${newer}.`;
    elements.show.textContent = `Show ${pending.name}`;
    elements.notice.dataset.version = pending.name;
    elements.notice.hidden = false;
  }

  function heard(event) {
    addVersion(event.name);
    if (number(event.name) <= number(state.version)) return; // shown already (this page's own edit)
    if (event.by === me && state.busy) {
      // This page's edit may be this very version: its answer is on its way. Decide after it.
      setTimeout(() => heard(event), 300);
      return;
    }
    const count = pending === null ? 1 : pending.count + 1;
    if (pending === null || number(event.name) > number(pending.name)) pending = { ...event, count };
    else pending.count = count;
    if (pending.name === event.name && event.by === me && pending.what.startsWith(`${me} `)) {
      pending.what = `you (in another window) ${pending.what.slice(me.length + 1)}`;
    }
    renderNotice();
  }

  elements.show.addEventListener('click', async () => {
    if (pending === null) return;
    const target = pending;
    pending = null;
    elements.notice.hidden = true;
    // Keep the tiles outside the edit when the version on screen is the one it was made on.
    const edit = target.parent === state.version && Array.isArray(target.correction?.bbox)
      ? { from: target.parent, bbox: target.correction.bbox } : null;
    await showVersion(target.name, edit);
  });

  function message(data) {
    if (data.type === 'hello') {
      mySocket = data.you.socket;
      sockets.clear();
      // Reconnected after a drop: a version made meanwhile is announced like any other.
      if (greeted && data.latest) {
        heard({ name: data.latest, what: 'The labels changed while the connection was down', parent: null,
          by: null, correction: null });
      }
      greeted = true;
    } else if (data.type === 'presence') {
      if (data.socket === mySocket) return;
      if (data.action === 'leave') sockets.delete(data.socket);
      else sockets.set(data.socket, { user: data.user, seen: Date.now() });
      renderPresence();
    } else if (data.type === 'label_version') {
      if (data.volume === config.volume.id) heard(data);
    }
  }

  const socket = keepSocket({ // the ping below runs once it is open
    path: config.live_websocket,
    what: 'live',
    onMessage: message,
    onOpen: () => {
      elements.presence.dataset.socket = 'open';
      clearInterval(pingTimer);
      pingTimer = setInterval(() => {
        socket.send({ type: 'ping' });
        renderPresence();
      }, PING_MS);
    },
    onClose: () => {
      elements.presence.dataset.socket = 'closed';
      clearInterval(pingTimer);
      sockets.clear();
    },
    onRefused: () => { elements.presence.textContent = 'Live updates were refused: sign in again.'; },
    onDrop: () => { elements.presence.textContent = 'Live updates: reconnecting…'; },
  });
  renderPresence();
  return {
    /** The version on screen changed (any way): hide a notice it answers. */
    shown: renderNotice,
    sockets,
  };
}
