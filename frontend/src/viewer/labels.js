/**
 * Label tiles: ids decoded from the server's packed RGB (id = r | g << 8 | b << 16), kept per
 * tile for hover and picking, and painted into a canvas that the label layer shows.
 *
 * Painting depends on a style (outlines only or filled, which nuclei are selected); when it
 * changes, the kept tiles of the plane on screen are painted again in place and the layer
 * redrawn, without fetching anything.
 */

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

const colourCache = new Map();

/** [r, g, b] of a nucleus id: a bright colour from a hash of the id. */
export function colourOf(id) {
  let rgb = colourCache.get(id);
  if (rgb === undefined) {
    const h = hash32(id);
    rgb = hslToRgb(h % 360, 0.7 + ((h >>> 9) % 25) / 100, 0.5 + ((h >>> 17) % 12) / 100);
    if (colourCache.size > 100000) colourCache.clear();
    colourCache.set(id, rgb);
  }
  return rgb;
}

/** The colour as one little-endian RGBA word for a Uint32Array over ImageData. */
function packed(id, alpha) {
  const [r, g, b] = colourOf(id);
  return ((alpha << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

export async function decodeLabelTile(blob) {
  // No colour management and no premultiplication: the bytes are ids, not colours.
  const bitmap = await createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  const { width, height } = bitmap;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = context.getImageData(0, 0, width, height).data;
  const ids = new Uint32Array(width * height);
  for (let i = 0, j = 0; i < ids.length; i += 1, j += 4) {
    ids[i] = rgba[j] | (rgba[j + 1] << 8) | (rgba[j + 2] << 16);
  }
  return { ids, width, height };
}

export class LabelTiles {
  constructor() {
    this.tiles = new Map(); // key -> entry, oldest first
    this.style = { outline: false, selected: [] };
  }

  static key(version, z, level, ty, tx) {
    return `${version}|${z}|${level}|${ty}|${tx}`;
  }

  /** Keep a decoded tile and paint it; the canvas is what the layer shows. */
  add({ version, z, level, ty, tx, ids, width, height }) {
    const key = LabelTiles.key(version, z, level, ty, tx);
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
    const next = { ...this.style, ...style };
    if (next.outline === this.style.outline && sameIds(next.selected, this.style.selected)) return false;
    this.style = { outline: next.outline, selected: [...next.selected] };
    for (const entry of this.tiles.values()) {
      if (entry.version === version && entry.z === z) this.paint(entry);
      else entry.stale = true;
    }
    return true;
  }

  /** Repaint the kept tiles of (version, z) painted under an older style (on a plane change). */
  refresh(version, z) {
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
