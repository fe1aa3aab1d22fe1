/**
 * The banner over the map: errors, conflicts and notices, one at a time. A 409 from the API
 * (the labels moved on since they were loaded) is a conflict with a Reload button.
 */

import { ApiError } from '../shared/api.js';

export function makeBanner(elements, { onReload }) {
  const banner = {
    /** kind: 'error', 'conflict' or 'info' (viewer.css colours them); reload: offer Reload. */
    show(text, { kind = 'error', reload = false } = {}) {
      elements.box.hidden = false;
      elements.box.dataset.kind = kind;
      elements.text.textContent = text;
      elements.reload.hidden = !reload;
    },
    hide() {
      elements.box.hidden = true;
    },
    /** Say that `what` failed, and why: the server's message, or the conflict. */
    apiError(error, what) {
      if (error instanceof ApiError && error.status === 409) {
        const current = error.extra?.current_label_version;
        banner.show(`${what}: the labels changed since you loaded them`
          + `${current ? ` (the latest version is now ${current})` : ''}, by another user or a job. `
          + 'Nothing was changed. Reload to see the current labels, then edit again.', { kind: 'conflict', reload: true });
      } else if (error instanceof ApiError) {
        banner.show(`${what}: ${error.message}`, { kind: 'error' });
      } else {
        console.error(error);
        banner.show(`${what}: ${error.message ?? error}`, { kind: 'error' });
      }
    },
  };
  elements.close.addEventListener('click', banner.hide);
  elements.reload.addEventListener('click', onReload);
  return banner;
}
