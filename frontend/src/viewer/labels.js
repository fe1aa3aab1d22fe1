/**
 * Label tiles: ids decoded from the server's packed RGB (shared/labeltiles.js), kept per
 * tile for hover and picking, and painted into a canvas that the label layer shows.
 *
 * Painting depends on a style (outlines only or filled, which nuclei are selected); when it
 * changes, the kept tiles of the plane on screen are painted again in place and the layer
 * redrawn, without fetching anything.
 *
 * Colours come from a graph colouring of the nuclei that touch (`colouring`): each tile's
 * decoded ids say which nuclei share an edge (within the tile and across its edges with the
 * kept tiles beside it), and a nucleus gets the first colour of a palette of well separated
 * ones, in an order of its own, that none of its known neighbours has; when a tile shows two
 * nuclei of one colour touching, the larger id takes another and every view's kept tiles are
 * painted again (`colouring.listeners`). So touching nuclei, and the two halves of a split,
 * always differ. `colouring.shuffle()` (key `c`) deals the colours again in another order.
 */

import { LABEL_BITMAP, idsOf } from '../shared/labeltiles.js';
import { TILE_SIZE } from './grid.js';

const FILL_ALPHA = 110; // of 255; the layer's opacity slider multiplies it
const SELECTED_FILL_ALPHA = 200;
const WHITE = 0xffffffff;
const MAX_TILES = 400; // ~0.5 MB each (ids and canvas): a few screens of tiles

/** A well-mixed 32-bit hash (lowbias32), so neighbouring ids get unrelated colours. */
function hash32(value) {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

function hslToRgb(h, s, l) {
  const a = s * Math.min(l, 1 - l);
  const f = (n) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

/** Twelve bright colours, hues 30 degrees apart, alternately lighter and darker. */
export const PALETTE = Array.from({ length: 12 }, (_, k) => hslToRgb((k * 150) % 360, 0.78, k % 2 ? 0.62 : 0.5));

/** Which nuclei touch, and the colour (a palette index) each has: a greedy graph colouring. */
export const colouring = {
  seed: 0,
  colour: new Map(), // id -> palette index
  neighbours: new Map(), // id -> Set of ids seen touching it
  changes: 0, // counts recolourings
  listeners: new Set(), // called when colours changed: every view repaints (LabelTiles, the queue)

  notify() {
    for (const listener of this.listeners) listener();
  },

  /** The palette index of `id`: the first, in the id's own order, no known neighbour has. */
  of(id) {
    let index = this.colour.get(id);
    if (index === undefined) {
      index = this.choose(id);
      if (this.colour.size > 200000) this.colour.clear();
      this.colour.set(id, index);
    }
    return index;
  },

  choose(id) {
    const taken = new Set();
    for (const other of this.neighbours.get(id) ?? []) {
      const index = this.colour.get(other);
      if (index !== undefined) taken.add(index);
    }
    const start = hash32(id ^ this.seed) % PALETTE.length;
    const step = [1, 5, 7, 11][hash32(id + this.seed) % 4]; // each prime to 12: every colour is tried
    for (let k = 0; k < PALETTE.length; k += 1) {
      const index = (start + k * step) % PALETTE.length;
      if (!taken.has(index)) return index;
    }
    return start; // more than twelve neighbours: one colour repeats, as far apart as it can
  },

  /** Learn touching pairs (a flat [a, b, a, b, ...] list); true when a colour changed. */
  learn(pairs) {
    let changed = false;
    for (let i = 0; i < pairs.length; i += 2) {
      const a = pairs[i];
      const b = pairs[i + 1];
      let na = this.neighbours.get(a);
      if (na === undefined) this.neighbours.set(a, (na = new Set()));
      if (na.has(b)) continue;
      na.add(b);
      let nb = this.neighbours.get(b);
      if (nb === undefined) this.neighbours.set(b, (nb = new Set()));
      nb.add(a);
      const ca = this.colour.get(a);
      const cb = this.colour.get(b);
      if (ca !== undefined && ca === cb) {
        const moved = Math.max(a, b);
        this.colour.delete(moved);
        this.colour.set(moved, this.choose(moved));
        changed = true;
      }
    }
    if (changed) this.changes += 1;
    return changed;
  },

  /** Deal the colours again in another order (the neighbours stay known). */
  shuffle() {
    this.seed = (this.seed + 0x9e3779b9) >>> 0;
    this.colour.clear();
    this.changes += 1;
    this.notify();
  },
};

/** [r, g, b] of a nucleus id: its colour in the graph colouring of touching nuclei. */
export function colourOf(id) {
  return PALETTE[colouring.of(id)];
}

/** Touching pairs of different non-zero ids in a tile's ids, and along the edges it shares
 * with the tiles `right` and `below` of it (their ids, or null). */
export function touchingPairs(ids, width, height, { left = null, right = null, above = null, below = null } = {}) {
  const seen = new Set();
  const pairs = [];
  const add = (a, b) => {
    if (a === 0 || b === 0 || a === b) return;
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const key = lo * 16777216 + hi;
    if (seen.has(key)) return;
    seen.add(key);
    pairs.push(lo, hi);
  };
  for (let y = 0, i = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1, i += 1) {
      const id = ids[i];
      if (id === 0) continue;
      if (x + 1 < width) add(id, ids[i + 1]);
      if (y + 1 < height) add(id, ids[i + width]);
    }
  }
  if (right && right.height === height) for (let y = 0; y < height; y += 1) add(ids[y * width + width - 1], right.ids[y * right.width]);
  if (left && left.height === height) for (let y = 0; y < height; y += 1) add(ids[y * width], left.ids[y * left.width + left.width - 1]);
  if (below && below.width === width) for (let x = 0; x < width; x += 1) add(ids[(height - 1) * width + x], below.ids[x]);
  if (above && above.width === width) for (let x = 0; x < width; x += 1) add(ids[x], above.ids[(above.height - 1) * width + x]);
  return pairs;
}

/** The colour as one little-endian RGBA word for a Uint32Array over ImageData. */
function packed(id, alpha) {
  const [r, g, b] = colourOf(id);
  return ((alpha << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/** A label tile's PNG as {ids, width, height} (shared/labeltiles.js says how ids are packed). */
export async function decodeLabelTile(blob) {
  const bitmap = await createImageBitmap(blob, LABEL_BITMAP);
  const { width, height } = bitmap;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { ids: idsOf(context.getImageData(0, 0, width, height).data), width, height };
}

export class LabelTiles {
  constructor() {
    this.tiles = new Map(); // key -> entry, oldest first
    this.style = { outline: false, selected: [] };
    this.current = { version: null, z: null }; // the plane on screen, as last told
    colouring.listeners.add(() => this.recolour(this.current.version, this.current.z));
  }

  static key(version, z, level, ty, tx) {
    return `${version}|${z}|${level}|${ty}|${tx}`;
  }

  /** Keep a decoded tile and paint it; the canvas is what the layer shows. Learns which
   * nuclei touch in it (and across its edges with the kept tiles beside it); when that changes
   * a colour, every view's kept tiles are painted again (`colouring.notify`). */
  add({ version, z, level, ty, tx, ids, width, height }) {
    const key = LabelTiles.key(version, z, level, ty, tx);
    const beside = (dy, dx) => this.tiles.get(LabelTiles.key(version, z, level, ty + dy, tx + dx)) ?? null;
    const pairs = touchingPairs(ids, width, height, {
      left: beside(0, -1), right: beside(0, 1), above: beside(-1, 0), below: beside(1, 0) });
    if (colouring.learn(pairs)) colouring.notify();
    const canvas = document.createElement('canvas');
    // Full tile size: OpenLayers stretches a tile's image over the whole tile, and edge tiles
    // of the pyramid are smaller.
    canvas.width = TILE_SIZE;
    canvas.height = TILE_SIZE;
    const entry = { key, version, z, level, ty, tx, ids, width, height, canvas };
    this.tiles.delete(key);
    this.tiles.set(key, entry);
    while (this.tiles.size > MAX_TILES) this.tiles.delete(this.tiles.keys().next().value);
    this.paint(entry);
    return entry;
  }

  /** The kept tile, or null. */
  get(version, z, level, ty, tx) {
    return this.tiles.get(LabelTiles.key(version, z, level, ty, tx)) ?? null;
  }

  /** The id at level-0 (y, x) of a version's plane, from the finest tile kept; null if none is. */
  idAt(version, z, y, x, levels) {
    for (let level = 0; level < levels; level += 1) {
      const scale = 2 ** level;
      const ly = Math.floor(y / scale);
      const lx = Math.floor(x / scale);
      const ty = Math.floor(ly / TILE_SIZE);
      const tx = Math.floor(lx / TILE_SIZE);
      const entry = this.tiles.get(LabelTiles.key(version, z, level, ty, tx));
      if (entry === undefined) continue;
      const py = ly - ty * TILE_SIZE;
      const px = lx - tx * TILE_SIZE;
      if (py < 0 || px < 0 || py >= entry.height || px >= entry.width) return 0;
      return entry.ids[py * entry.width + px];
    }
    return null;
  }

  /** Change the style and repaint the kept tiles of (version, z); true if anything changed. */
  setStyle(style, version, z) {
    this.current = { version, z };
    const next = { ...this.style, ...style };
    if (next.outline === this.style.outline && sameIds(next.selected, this.style.selected)) return false;
    this.style = { outline: next.outline, selected: [...next.selected] };
    for (const entry of this.tiles.values()) {
      if (entry.version === version && entry.z === z) this.paint(entry);
      else entry.stale = true;
    }
    return true;
  }

  /** Paint the kept tiles of (version, z) again after the colours changed; the others later. */
  recolour(version, z) {
    this.current = { version, z };
    for (const entry of this.tiles.values()) {
      if (entry.version === version && entry.z === z) this.paint(entry);
      else entry.stale = true;
    }
    this.onRecolour?.();
  }

  /** Repaint the kept tiles of (version, z) painted under an older style (on a plane change). */
  refresh(version, z) {
    this.current = { version, z };
    let changed = false;
    for (const entry of this.tiles.values()) {
      if (entry.stale && entry.version === version && entry.z === z) {
        this.paint(entry);
        changed = true;
      }
    }
    return changed;
  }

  paint(entry) {
    const { ids, width, height, canvas } = entry;
    const context = canvas.getContext('2d');
    const image = context.createImageData(width, height);
    const out = new Uint32Array(image.data.buffer);
    const { outline } = this.style;
    const selected = this.style.selected;
    let lastId = -1;
    let fill = 0;
    let edge = 0;
    let isSelected = false;
    for (let y = 0, i = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1, i += 1) {
        const id = ids[i];
        if (id === 0) continue;
        if (id !== lastId) {
          lastId = id;
          isSelected = selected.length > 0 && selected.includes(id);
          fill = isSelected ? packed(id, SELECTED_FILL_ALPHA) : (outline ? 0 : packed(id, FILL_ALPHA));
          edge = isSelected ? WHITE : packed(id, 255);
        }
        const boundary = (x > 0 && ids[i - 1] !== id) || (x < width - 1 && ids[i + 1] !== id)
          || (y > 0 && ids[i - width] !== id) || (y < height - 1 && ids[i + width] !== id);
        if (boundary) out[i] = edge;
        else if (fill) out[i] = fill;
      }
    }
    context.clearRect(0, 0, TILE_SIZE, TILE_SIZE);
    context.putImageData(image, 0, 0);
    entry.stale = false;
  }
}

function sameIds(a, b) {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
