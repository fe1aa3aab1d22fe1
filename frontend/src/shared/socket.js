/**
 * WebSockets to this server (ezquant_web/routing.py): the URL of a path on the page's host,
 * and a socket that reconnects after a drop.
 *
 * The consumers close a socket they refuse with 4401 (signed out) or 4403 (not allowed
 * here): reconnecting would be refused again, so the socket stops and says why. Any other
 * close is a drop: it connects again after 1 s, then twice as long each time, up to
 * `maxRetryMs`.
 */

export const REFUSED = new Set([4401, 4403]);

/** ws:// or wss:// (as the page is http or https) on the page's host, then `path`. */
export function socketUrl(path) {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${window.location.host}${path}`;
}

/**
 * Keep a socket to `path` open. Each message is parsed as JSON and given to `onMessage`; a
 * message that is not JSON, or that `onMessage` fails on, is logged as a bad `what` message
 * and the socket goes on. `onOpen()` on each (re)connection; `onClose(event)` on each close,
 * then `onRefused(code)` (and no more tries) or `onDrop(retryMs)` (the wait before the next).
 */
export function keepSocket({ path, onMessage, onOpen = () => {}, onClose = () => {}, onRefused = () => {},
  onDrop = () => {}, maxRetryMs = 15000, what = 'socket' }) {
  let socket = null;
  let retryMs = 1000;
  let stopped = false;

  function connect() {
    if (stopped) return;
    socket = new WebSocket(socketUrl(path));
    socket.addEventListener('open', () => {
      retryMs = 1000;
      onOpen();
    });
    socket.addEventListener('message', (event) => {
      try {
        onMessage(JSON.parse(event.data));
      } catch (error) {
        console.error(`bad ${what} message`, error);
      }
    });
    socket.addEventListener('close', (event) => {
      socket = null;
      onClose(event);
      if (REFUSED.has(event.code)) {
        onRefused(event.code);
        return;
      }
      onDrop(retryMs);
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, maxRetryMs);
    });
  }

  connect();
  return {
    /** True while the socket is open. */
    get open() { return socket !== null && socket.readyState === WebSocket.OPEN; },
    /** Send `data` as JSON if the socket is open; true if it was sent. */
    send(data) {
      if (!this.open) return false;
      socket.send(JSON.stringify(data));
      return true;
    },
    /** Close it for good: no reconnection. */
    stop() {
      stopped = true;
      socket?.close();
    },
  };
}
