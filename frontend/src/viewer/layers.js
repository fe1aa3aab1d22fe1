/**
 * The map and its tile layers: the image (8-bit tiles windowed by lo/hi on the server), the
 * label overlay (decoded in the browser, see labels.js) and the uncertainty heat map.
 *
 * Each layer keeps one source for the page's life; a new plane, window or label version gives
 * the source a new loader and key, so OpenLayers keeps drawing the old tiles until the new ones
 * are in (no flash to black while stepping through z).
 */

import Map from 'ol/Map.js';
import View from 'ol/View.js';
import TileLayer from 'ol/layer/Tile.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import ImageTileSource from 'ol/source/ImageTile.js';
import { defaults as defaultControls } from 'ol/control/defaults.js';
import ZoomToExtent from 'ol/control/ZoomToExtent.js';
import DoubleClickZoom from 'ol/interaction/DoubleClickZoom.js';
import { defaults as defaultInteractions } from 'ol/interaction/defaults.js';

import { TILE_SIZE } from './grid.js';
import { LabelTiles, decodeLabelTile } from './labels.js';

/** An ImageTile source whose loader can be swapped (setLoader and setKey are protected). */
class SwitchingTileSource extends ImageTileSource {
  switchTo(loader, key) {
    this.setLoader(loader);
    this.setKey(key);
  }
}


/** The tile as an image OpenLayers can draw, padded to the full tile size at the edges. */
async function imageOf(blob) {
  const bitmap = await createImageBitmap(blob);
  if (bitmap.width === TILE_SIZE && bitmap.height === TILE_SIZE) return bitmap;
  const canvas = document.createElement('canvas');
  canvas.width = TILE_SIZE;
  canvas.height = TILE_SIZE;
  canvas.getContext('2d').drawImage(bitmap, 0, 0);
  bitmap.close();
  return canvas;
}

/** Tile loads in flight and failed, per layer (for the status bar, the tests and the bench).
 * Counted in the loaders themselves: OpenLayers sends no end event for a tile it drops. */
class LoadCounter {
  constructor(onChange) {
    this.pending = 0;
    this.errors = 0;
    this.onChange = onChange;
  }

  /** The loader, counted. */
  wrap(loader) {
    return async (z, x, y, options) => {
      this.pending += 1;
      this.onChange();
      try {
        return await loader(z, x, y, options);
      } catch (error) {
        if (!options.signal?.aborted) this.errors += 1;
        throw error;
      } finally {
        this.pending -= 1;
        this.onChange();
      }
    };
  }
}

/**
 * `plane`: 'xy' (the default: plane `z` of the stack), or 'xz' / 'yz', an orthogonal plane
 * (ortho.js), whose `z` is then the level-0 row y (column x) it cuts: level k shows its row
 * (column) floor(z / 2**k), drawn with z downwards at the physical aspect by the server.
 */
export function makeMap({ target, grid, api, volumeId, onLoadsChange, onTileError, plane = 'xy' }) {
  const tilePath = (level, z, ty, tx) => (plane === 'xy' ? `${level}/${z}/${ty}/${tx}`
    : `${plane}/${level}/${Math.floor(z / 2 ** level)}/${ty}/${tx}`);

  async function fetchTile(url, signal, layer) {
    let response;
    try {
      response = await fetch(url, { signal, credentials: 'same-origin' });
    } catch (error) {
      if (!signal.aborted) onTileError(layer, 0); // aborted: OpenLayers dropped the tile
      throw error;
    }
    if (!response.ok) {
      onTileError(layer, response.status);
      throw new Error(`tile ${response.status}`);
    }
    return response.blob();
  }

  const sourceOptions = { projection: grid.projection, tileGrid: grid.tileGrid, wrapX: false, transition: 0 };
  const imageSource = new SwitchingTileSource({ ...sourceOptions, state: 'loading' });
  const labelSource = new SwitchingTileSource({ ...sourceOptions, state: 'loading', interpolate: false });
  const heatSource = new SwitchingTileSource({ ...sourceOptions, state: 'loading', interpolate: false });
  const labelTiles = new LabelTiles();
  const loads = { image: new LoadCounter(onLoadsChange), labels: new LoadCounter(onLoadsChange),
    heat: new LoadCounter(onLoadsChange) };

  const imageLayer = new TileLayer({ source: imageSource, preload: 1 });
  const heatLayer = new TileLayer({ source: heatSource, visible: false, opacity: 0.7 });
  const labelLayer = new TileLayer({ source: labelSource, opacity: 0.6 });
  labelTiles.onRecolour = () => labelLayer.changed(); // touching nuclei seen with one colour
  const sketchSource = new VectorSource({ wrapX: false });
  const sketchLayer = new VectorLayer({ source: sketchSource });

  const view = new View({
    projection: grid.projection,
    extent: grid.extent,
    constrainOnlyCenter: true,
    showFullExtent: true,
    enableRotation: false,
    maxResolution: 2 ** (grid.levels + 1),
    minResolution: 1 / 16,
  });
  const doubleClickZoom = [];
  const interactions = defaultInteractions({ altShiftDragRotate: false, pinchRotate: false });
  interactions.forEach((interaction) => {
    if (interaction instanceof DoubleClickZoom) doubleClickZoom.push(interaction);
  });
  const map = new Map({
    target,
    layers: [imageLayer, labelLayer, heatLayer, sketchLayer],
    view,
    controls: defaultControls({ attribution: false, rotate: false }).extend([
      new ZoomToExtent({ extent: grid.extent, label: '⤢', tipLabel: 'Fit the volume' }),
    ]),
    interactions,
  });
  view.fit(grid.extent, { padding: [8, 8, 8, 8] });

  const base = `${api}volumes/${volumeId}/`;
  let showing = { z: 0, lo: 0, hi: 1, version: null, edit: null };

  function showImage(z, lo, hi) {
    const key = `image|${z}|${lo}|${hi}`;
    imageSource.switchTo(loads.image.wrap(async (olZ, tx, ty, { signal }) => {
      const level = grid.levelOf(olZ);
      const query = new URLSearchParams({ lo, hi, size: TILE_SIZE });
      return imageOf(await fetchTile(`${base}tiles/${tilePath(level, z, ty, tx)}.png?${query}`, signal, 'image'));
    }), key);
    if (imageSource.getState() !== 'ready') imageSource.setState('ready');
  }

  /** A kept tile of `edit.from` that the edit (bbox [z0, z1, y0, y1, x0, x1), level 0) cannot
   * have changed: its ids are those of the new version too. */
  function unchangedTile(edit, z, level, ty, tx) {
    if (!edit || plane !== 'xy') return null; // an XZ / YZ tile: its rows are planes
    const [z0, z1, y0, y1, x0, x1] = edit.bbox;
    const span = TILE_SIZE * 2 ** level;
    const touched = z >= z0 && z < z1 && ty * span < y1 && (ty + 1) * span > y0 && tx * span < x1
      && (tx + 1) * span > x0;
    return touched ? null : labelTiles.get(edit.from, z, level, ty, tx);
  }

  function showLabels(version, z) {
    labelLayer.setVisible(labelLayer.get('wanted') !== false && version !== null);
    if (version === null) return;
    labelTiles.refresh(version, z);
    const edit = version === showing.version ? showing.edit : null;
    labelSource.switchTo(loads.labels.wrap(async (olZ, tx, ty, { signal }) => {
      const level = grid.levelOf(olZ);
      const same = unchangedTile(edit, z, level, ty, tx);
      if (same) return labelTiles.add({ version, z, level, ty, tx, ids: same.ids, width: same.width,
        height: same.height }).canvas;
      const blob = await fetchTile(`${base}labels/${version}/tiles/${tilePath(level, z, ty, tx)}.png?size=${TILE_SIZE}`,
        signal, 'labels');
      const decoded = await decodeLabelTile(blob);
      return labelTiles.add({ version, z, level, ty, tx, ...decoded }).canvas;
    }), `labels|${version}|${z}`);
    if (labelSource.getState() !== 'ready') labelSource.setState('ready');
  }

  function showHeat(version, z) {
    if (version === null) return;
    heatSource.switchTo(loads.heat.wrap(async (olZ, tx, ty, { signal }) => {
      const level = grid.levelOf(olZ);
      return imageOf(await fetchTile(`${base}labels/${version}/uncertainty/${tilePath(level, z, ty, tx)}.png?size=${TILE_SIZE}`,
        signal, 'heat'));
    }), `heat|${version}|${z}`);
    if (heatSource.getState() !== 'ready') heatSource.setState('ready');
  }

  return {
    map,
    view,
    grid,
    labelTiles,
    loads,
    sketchSource,
    sketchLayer,
    imageLayer,
    labelLayer,
    heatLayer,
    doubleClickZoom,
    /** Show plane z, window [lo, hi] and label version `version` (null: none). `edit`
     * ({from, bbox}) says that `version` is `from` changed only inside bbox: the tiles kept
     * of `from` outside it are shown again without fetching them. */
    show({ z = showing.z, lo = showing.lo, hi = showing.hi, version = showing.version, edit }) {
      const before = showing;
      const keptEdit = version === before.version ? before.edit : (edit ?? null);
      showing = { z, lo, hi, version, edit: keptEdit };
      if (z !== before.z || lo !== before.lo || hi !== before.hi || !imageSource.getKey()) showImage(z, lo, hi);
      if (z !== before.z || version !== before.version || !labelSource.getKey()) {
        showLabels(version, z);
        showHeat(version, z);
      }
    },
    showing: () => showing,
    setLabelsVisible(visible) {
      labelLayer.set('wanted', visible);
      labelLayer.setVisible(visible && showing.version !== null);
    },
    /** Repaint the label tiles with a new style (outlines, selection). */
    setLabelStyle(style) {
      if (labelTiles.setStyle(style, showing.version, showing.z)) labelLayer.changed();
    },
    idAt(y, x) {
      if (showing.version === null) return null;
      return labelTiles.idAt(showing.version, showing.z, y, x, grid.levels);
    },
    pending: () => loads.image.pending + loads.labels.pending + (heatLayer.getVisible() ? loads.heat.pending : 0),
  };
}
