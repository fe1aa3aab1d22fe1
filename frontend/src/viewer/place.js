/**
 * The place on screen lives in the address (#z=&y=&x=&r=, then ortho.js's part: &v=3&cy=&cx=),
 * so a view can be shared or reloaded.
 */

import { toCoordinate, toYX } from './grid.js';

const REMEMBER_DELAY_MS = 300; // the address is rewritten once the view rests

/** Read the address into the state and the view; the parameters, for ortho.js's `restore`. */
export function readPlace({ state, view, volume }) {
  const place = new URLSearchParams(window.location.hash.slice(1));
  if (place.has('z')) state.z = Math.max(0, Math.min(volume.shape[0] - 1, Number(place.get('z')) || 0));
  if (place.has('y') && place.has('x')) {
    view.setCenter(toCoordinate(Number(place.get('y')), Number(place.get('x'))));
    if (place.has('r')) view.setResolution(Number(place.get('r')));
  }
  return place;
}

/** `remember()` writes the place into the address a moment after the last call. `placePart`
 * gives ortho.js's part of it, read when written. */
export function makePlaceMemory({ state, view, placePart }) {
  let timer = null;
  return {
    remember() {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const center = view.getCenter();
        if (!center) return;
        const [y, x] = toYX(center);
        const r = view.getResolution();
        window.history.replaceState(null, '',
          `#z=${state.z}&y=${Math.round(y)}&x=${Math.round(x)}&r=${Number(r.toPrecision(3))}${placePart()}`);
      }, REMEMBER_DELAY_MS);
    },
  };
}
