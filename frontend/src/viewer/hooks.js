/**
 * What the browser tests (tests/frontend/) and bench/viewer.py read, in one place; the viewer
 * itself never reads it back.
 *
 * - `#viewer`'s data attributes: the state mirrored (version, z, busy, selected; locked), the
 *   tiles still loading (tilesPending), the nucleus under the pointer (hoverId), the colour
 *   seed, the timing of the first full render (firstRenderMs), of the last one (rendered) and of
 *   the last edit until its overlay was on screen (lastEditMs), the version whose overlay is
 *   drawn (overlayVersion), and `state` = "ready" once the first version is shown;
 * - `marks`: the timing marks behind them (`marks.edits`: sent, answered, overlay drawn);
 * - `window.ezqViewer`: the viewer's parts (`expose`), and `nucleiOnPlane()`.
 */

import { TILE_SIZE } from './grid.js';

export function makeTestHooks({ root, state, layers }) {
  const { map, view } = layers;
  const marks = { edits: [] };

  map.once('rendercomplete', () => {
    marks.firstFullRender = performance.now();
    root.dataset.firstRenderMs = String(Math.round(marks.firstFullRender));
  });
  map.on('rendercomplete', () => { root.dataset.rendered = String(performance.now()); });

  /** Resolves at the next frame in which every tile on screen is drawn and the view is at rest
   * (OpenLayers also completes frames in the middle of an animation). */
  function nextFullRender() {
    return new Promise((resolve) => {
      const done = () => {
        if (view.getAnimating() || view.getInteracting()) map.once('rendercomplete', done);
        else resolve(performance.now());
      };
      map.once('rendercomplete', done);
      map.render();
    });
  }

  /**
   * The nuclei in the level-0 label tiles kept for the plane on screen: per id its pixel
   * count, bounding box and the pixel of it nearest its mean (for tests and debugging).
   */
  function nucleiOnPlane() {
    const found = new Map();
    for (const tile of layers.labelTiles.tiles.values()) {
      if (tile.version !== state.version || tile.z !== state.z || tile.level !== 0) continue;
      const y0 = tile.ty * TILE_SIZE;
      const x0 = tile.tx * TILE_SIZE;
      tile.ids.forEach((id, i) => {
        if (id === 0) return;
        const y = y0 + Math.floor(i / tile.width);
        const x = x0 + (i % tile.width);
        const n = found.get(id) ?? { id, n: 0, sy: 0, sx: 0, y0: y, y1: y, x0: x, x1: x, pixels: [] };
        n.n += 1;
        n.sy += y;
        n.sx += x;
        n.y0 = Math.min(n.y0, y);
        n.y1 = Math.max(n.y1, y);
        n.x0 = Math.min(n.x0, x);
        n.x1 = Math.max(n.x1, x);
        n.pixels.push([y, x]);
        found.set(id, n);
      });
    }
    return [...found.values()].map(({ pixels, sy, sx, ...n }) => {
      const my = sy / n.n;
      const mx = sx / n.n;
      let best = pixels[0];
      for (const p of pixels) if (Math.hypot(p[0] - my, p[1] - mx) < Math.hypot(best[0] - my, best[1] - mx)) best = p;
      return { ...n, y: best[0], x: best[1] };
    });
  }

  return {
    marks,
    nextFullRender,
    /** The state changed: mirror it. */
    mirror() {
      root.dataset.version = state.version ?? '';
      root.dataset.z = String(state.z);
      root.dataset.busy = String(state.busy);
      root.dataset.selected = state.selection.join(',');
    },
    locked(locked) {
      root.dataset.locked = locked ? 'true' : 'false';
    },
    tilesPending(count) {
      root.dataset.tilesPending = String(count);
    },
    hovered(id) {
      root.dataset.hoverId = id === null ? '' : String(id);
    },
    coloured(seed) {
      root.dataset.colourSeed = String(seed);
    },
    /** The overlay of `version` is on screen in every view at `at`; after an edit sent at
     * `editSent` and answered at `answered` (performance.now()), that is its time. */
    overlayDrawn({ version, at, editSent = null, answered = null }) {
      if (editSent !== null) {
        marks.edits.push({ version, sent: editSent, answered, overlay: at, ms: at - editSent,
          serverMs: answered - editSent, overlayMs: at - answered });
        root.dataset.lastEditMs = String(Math.round(at - editSent));
      }
      root.dataset.overlayVersion = version ?? '';
    },
    ready() {
      root.dataset.state = 'ready';
    },
    /** `window.ezqViewer`: the state, the marks and `parts` (map, layers, setZ, editor ...). */
    expose(parts) {
      window.ezqViewer = { state, marks, nextFullRender, nucleiOnPlane, ...parts };
    },
  };
}
