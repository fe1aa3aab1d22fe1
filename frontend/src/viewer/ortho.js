/**
 * The orthogonal views: the XZ and YZ planes of a stack through a shared cursor (z, y, x),
 * beside the XY view (layout "3 views"), or hidden (layout "1 view").
 *
 * Each is a map of its own (layers.js with `plane`), with the image in the same contrast, the
 * label overlay (its own decoded tiles: hover ids and picking), the heat map and the overlay's
 * style. The server draws their tiles with z downwards, stretched to the physical aspect:
 * level-0 row r shows plane floor((r + 0.5) * Z / rows), rows = round(Z * vz / vx) for XZ
 * (vy for YZ), so a map coordinate [col, -row] is (x or y, z * rows / Z).
 *
 * The cursor: XY shows plane z, XZ the row y, YZ the column x; dashed lines in each view show
 * where the other two cut it (XY blue, XZ pink, YZ green, the colours of the views' frames).
 * A click with the select or merge tool, or an Alt-drag with any tool, moves it in the view
 * clicked; "jump to nucleus" centres all three on the nucleus. With the split-line tool a
 * line drawn in XZ or YZ splits the nucleus under it by a z-cut (the API's `plane`), one
 * correction like any other: undo, 409 and the review work as for an XY edit.
 */

import Feature from 'ol/Feature.js';
import LineString from 'ol/geom/LineString.js';
import Draw from 'ol/interaction/Draw.js';
import PointerInteraction from 'ol/interaction/Pointer.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import Stroke from 'ol/style/Stroke.js';
import Style from 'ol/style/Style.js';

import { TILE_SIZE, inside, makeGrid, toCoordinate, toYX } from './grid.js';
import { makeMap } from './layers.js';

export const PLANE_COLOURS = { xy: '#4dc3ff', xz: '#ff5c8a', yz: '#6ee06e' };
const PLANES = ['xz', 'yz'];

/** Python's round(): half to even (the server's display_rows uses it). */
function roundHalfEven(value) {
  const r = Math.round(value);
  return Math.abs(value % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Level-0 rows of the XZ (YZ) plane: Z stretched by vz / vx (vz / vy). */
export function displayRows(volume, plane) {
  const [vz, vy, vx] = volume.voxel_size;
  return Math.max(1, roundHalfEven((volume.shape[0] * vz) / (plane === 'xz' ? vx : vy)));
}

function lineStyle(colour) {
  return new Style({ stroke: new Stroke({ color: colour, width: 1.5, lineDash: [6, 5] }) });
}
const STYLES = Object.fromEntries(Object.entries(PLANE_COLOURS).map(([plane, colour]) => [plane, lineStyle(colour)]));
const sketchStyle = new Style({ stroke: new Stroke({ color: '#ffd23f', width: 2 }) });

/** Dashed lines across `extent` at `row` (horizontal) and `col` (vertical), in their colours. */
function drawCrosshair(source, extent, { row, col, rowPlane, colPlane }) {
  source.clear();
  const across = new Feature(new LineString([[extent[0], -row], [extent[2], -row]]));
  across.setStyle(STYLES[rowPlane]);
  const down = new Feature(new LineString([[col, extent[1]], [col, extent[3]]]));
  down.setStyle(STYLES[colPlane]);
  source.addFeatures([across, down]);
}

/** Resolves at the next frame in which every tile on screen of `map` is drawn. */
function nextRender(map) {
  return new Promise((resolve) => {
    const view = map.getView();
    const done = () => {
      if (view.getAnimating() || view.getInteracting()) map.once('rendercomplete', done);
      else resolve(performance.now());
    };
    map.once('rendercomplete', done);
    map.render();
  });
}

export function makeOrthoViews({ volume, api, root, xy, elements, state, setZ, select, banner, onLoadsChange,
  onTileError, onPlace }) {
  const [Z, Y, X] = volume.shape;
  const cursorOf = { y: Math.floor(Y / 2), x: Math.floor(X / 2) };
  state.cursor = cursorOf;
  let layout = '1';
  let editor = null;
  const fitted = new Set();

  const views = {};
  // A 2D image has no XZ / YZ planes (the page leaves their elements out): no views, one layout.
  for (const plane of PLANES.filter((p) => Z > 1 && elements[p])) {
    const rows = displayRows(volume, plane);
    const cols = plane === 'xz' ? X : Y;
    const grid = makeGrid({ id: `${volume.id}-${plane}`, shape: [1, rows, cols], level_shapes: volume.level_shapes });
    const layers = makeMap({ target: elements[plane], grid, api, volumeId: volume.id, plane, onLoadsChange,
      onTileError });
    const cursorSource = new VectorSource({ wrapX: false });
    layers.map.addLayer(new VectorLayer({ source: cursorSource }));
    views[plane] = { plane, rows, cols, grid, layers, cursorSource, draw: null };
  }
  const xyCursor = new VectorSource({ wrapX: false });
  const xyCursorLayer = new VectorLayer({ source: xyCursor, visible: false }); // three views only
  xy.map.addLayer(xyCursorLayer);

  /** Display row of the middle of plane z in the XZ / YZ views, and back. */
  const rowOf = (view, z) => ((z + 0.5) * view.rows) / Z;
  const planeAt = (view, row) => Math.max(0, Math.min(Z - 1, Math.floor((row * Z) / view.rows)));
  const indexOf = (plane) => (plane === 'xz' ? cursorOf.y : cursorOf.x);

  function drawCursor() {
    drawCrosshair(xyCursor, xy.grid.extent, { row: cursorOf.y + 0.5, col: cursorOf.x + 0.5, rowPlane: 'xz',
      colPlane: 'yz' });
    for (const view of Object.values(views)) {
      const col = (view.plane === 'xz' ? cursorOf.x : cursorOf.y) + 0.5;
      drawCrosshair(view.cursorSource, view.grid.extent, { row: rowOf(view, state.z), col, rowPlane: 'xy',
        colPlane: view.plane === 'xz' ? 'yz' : 'xz' });
    }
    root.dataset.cursor = `${state.z},${cursorOf.y},${cursorOf.x}`;
  }

  /** Show the version, window or label style on both views (layers.show's arguments). */
  function show({ version, lo, hi }) {
    for (const view of Object.values(views)) {
      const args = { z: indexOf(view.plane) };
      if (version !== undefined) args.version = version;
      if (lo !== undefined) args.lo = lo;
      if (hi !== undefined) args.hi = hi;
      view.layers.show(args);
    }
  }

  /** Resolves when every view on screen is fully drawn (at once in the one-view layout). */
  function nextFullRender() {
    if (layout !== '3') return Promise.resolve(performance.now());
    return Promise.all(Object.values(views).map((view) => nextRender(view.layers.map))).then((t) => Math.max(...t));
  }

  /** Move the cursor (level-0 voxels; any of z, y, x); resolves when the views are drawn. */
  function setCursor({ z, y, x } = {}) {
    if (y !== undefined) cursorOf.y = Math.max(0, Math.min(Y - 1, Math.floor(y)));
    if (x !== undefined) cursorOf.x = Math.max(0, Math.min(X - 1, Math.floor(x)));
    for (const view of Object.values(views)) view.layers.show({ z: indexOf(view.plane) });
    if (z !== undefined && Math.round(z) !== state.z) setZ(z); // calls followZ
    else drawCursor();
    onPlace();
    return nextFullRender();
  }

  let firstRender = null;
  function setLayout(next) {
    layout = next === '3' && Object.keys(views).length === PLANES.length ? '3' : '1';
    if (layout === '3' && firstRender === null) { // the first time all three are drawn (bench/viewer.py)
      firstRender = Promise.all([xy.map, ...Object.values(views).map((v) => v.layers.map)].map(
        (map) => new Promise((resolve) => map.once('rendercomplete', () => resolve(performance.now()))),
      )).then((times) => {
        root.dataset.firstRenderAllMs = String(Math.round(Math.max(...times)));
      });
    }
    elements.views.dataset.layout = layout;
    xyCursorLayer.setVisible(layout === '3');
    root.dataset.layout = layout;
    for (const view of Object.values(views)) elements[view.plane].hidden = layout !== '3';
    if (elements.toggle) {
      elements.toggle.setAttribute('aria-pressed', String(layout === '3'));
      elements.toggle.textContent = layout === '3' ? 'One view' : 'Three views (XY, XZ, YZ)';
    }
    requestAnimationFrame(() => {
      xy.map.updateSize();
      for (const view of Object.values(views)) {
        view.layers.map.updateSize();
        if (layout === '3' && !fitted.has(view.plane)) {
          fitted.add(view.plane);
          view.layers.view.fit(view.grid.extent, { padding: [8, 8, 8, 8] });
        }
      }
    });
    onPlace();
  }
  elements.toggle?.addEventListener('click', () => setLayout(layout === '3' ? '1' : '3'));

  /** Centre all three views on a nucleus (a nucleus row of the API). */
  function centreOn(nucleus) {
    cursorOf.y = Math.round(nucleus.centroid_y);
    cursorOf.x = Math.round(nucleus.centroid_x);
    for (const view of Object.values(views)) {
      view.layers.show({ z: indexOf(view.plane) });
      const [w, h] = view.layers.map.getSize() ?? [0, 0];
      if (!w || !h) continue;
      const across = view.plane === 'xz' ? [nucleus.x_min, nucleus.x_max] : [nucleus.y_min, nucleus.y_max];
      const width = (across[1] ?? across[0] ?? 0) - (across[0] ?? 0) + 1;
      const height = ((nucleus.z_max - nucleus.z_min + 1) * view.rows) / Z;
      // As far in as the nucleus needs (the XY view's jump too): a stop at 4x left a small one tiny.
      const resolution = Math.max(view.layers.view.getMinResolution(), Math.min(Math.max((width * 2.5) / w,
        (height * 2.5) / h), 2 ** (view.grid.levels - 1)));
      const col = view.plane === 'xz' ? nucleus.centroid_x : nucleus.centroid_y;
      view.layers.view.animate({ center: [col + 0.5, -rowOf(view, nucleus.centroid_z)], resolution, duration: 250 });
    }
    drawCursor();
  }

  // -- picking, the cursor by click or Alt-drag, hover -----------------------------------
  function pick(view, row, col, event) {
    const tool = editor?.tool;
    if (tool !== 'select' && tool !== 'merge') return;
    const id = view.layers.idAt(row, col);
    if (!id) {
      if (tool === 'select' && !event.originalEvent.shiftKey) select([]);
      return;
    }
    const selection = state.selection;
    const picked = selection.includes(id);
    const shift = event.originalEvent.shiftKey;
    if (tool === 'merge') { // as in the XY view: a click adds, a shift-click takes one out
      if (shift) select(selection.filter((s) => s !== id));
      else if (!picked) select([...selection, id]);
    } else if (shift) {
      select(picked ? selection.filter((s) => s !== id) : [...selection, id]);
    } else {
      select([id]);
    }
  }

  function cursorFromView(view, coordinate) {
    const [row, col] = toYX(coordinate);
    if (!inside(view.grid, [row, col])) return;
    const z = planeAt(view, row);
    setCursor(view.plane === 'xz' ? { z, x: col } : { z, y: col });
  }

  function cursorDrag(move) {
    const handle = (event) => {
      move(event.coordinate);
      return true;
    };
    return new PointerInteraction({
      handleDownEvent: (event) => event.originalEvent.altKey && handle(event),
      handleDragEvent: handle,
      handleUpEvent: () => false,
    });
  }
  xy.map.addInteraction(cursorDrag((coordinate) => {
    const [y, x] = toYX(coordinate);
    if (inside(xy.grid, [y, x])) setCursor({ y, x });
  }));

  for (const view of Object.values(views)) {
    const { map } = view.layers;
    map.addInteraction(cursorDrag((coordinate) => cursorFromView(view, coordinate)));
    map.on('singleclick', (event) => {
      const tool = editor?.tool;
      if (tool !== 'select' && tool !== 'merge') return;
      const [row, col] = toYX(event.coordinate);
      if (!inside(view.grid, [row, col])) return;
      pick(view, row, col, event);
      cursorFromView(view, event.coordinate);
    });
    let hoverFrame = null;
    map.on('pointermove', (event) => {
      if (event.dragging || hoverFrame !== null) return;
      const coordinate = event.coordinate;
      hoverFrame = requestAnimationFrame(() => {
        hoverFrame = null;
        const [row, col] = toYX(coordinate);
        if (!inside(view.grid, [row, col])) {
          elements.statusPos.textContent = '—';
          return;
        }
        const across = view.plane === 'xz' ? 'x' : 'y';
        elements.statusPos.textContent = `z ${planeAt(view, row)} · ${across} ${Math.floor(col)} (${view.plane})`;
        const id = view.layers.idAt(row, col);
        elements.statusId.textContent = id === null ? 'nucleus ?' : (id === 0 ? 'background' : `nucleus #${id}`);
        root.dataset.hoverId = id === null ? '' : String(id);
        map.getTargetElement().classList.toggle('over-nucleus', Boolean(id));
      });
    });
  }

  // -- split by a line drawn in XZ / YZ: a z-cut --------------------------------------------
  /** The id most often under the line (display coordinates), the selected one if it is under it. */
  function idUnderLine(view, coordinates) {
    const counts = new Map();
    for (let i = 0; i + 1 < coordinates.length; i += 1) {
      const [r0, c0] = toYX(coordinates[i]);
      const [r1, c1] = toYX(coordinates[i + 1]);
      const steps = Math.max(1, Math.ceil(Math.hypot(r1 - r0, c1 - c0)));
      for (let s = 0; s <= steps; s += 1) {
        const id = view.layers.idAt(r0 + ((r1 - r0) * s) / steps, c0 + ((c1 - c0) * s) / steps);
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    const selected = state.selection;
    if (selected.length === 1 && counts.has(selected[0])) return selected[0];
    let best = null;
    for (const [id, n] of counts) if (best === null || n > counts.get(best)) best = id;
    return best;
  }

  /** Send the split of a line drawn in `view` ([col, -row] coordinates). */
  function splitAlong(view, coordinates) {
    const id = idUnderLine(view, coordinates);
    if (!id) {
      banner.show('Draw the line across a nucleus: it touched none.', { kind: 'error' });
      return null;
    }
    const round = (v) => Math.round(v * 100) / 100;
    const line = coordinates.map((c) => {
      const [row, col] = toYX(c);
      return [round((row * Z) / view.rows), round(col)]; // [z, x] or [z, y], planes spanning [z, z + 1)
    });
    return editor.correct({ type: 'split', nucleus_ids: [id], line, plane: view.plane });
  }

  function followTool(tool) {
    for (const view of Object.values(views)) {
      const { map, sketchSource } = view.layers;
      if (view.draw) {
        view.draw.abortDrawing();
        map.removeInteraction(view.draw);
        view.draw = null;
      }
      view.layers.doubleClickZoom.forEach((i) => i.setActive(tool !== 'split-line'));
      map.getTargetElement().dataset.tool = tool;
      if (tool !== 'split-line') continue;
      view.draw = new Draw({ source: sketchSource, type: 'LineString', maxPoints: 2, style: sketchStyle,
        stopClick: true });
      view.draw.on('drawend', (event) => {
        setTimeout(() => sketchSource.clear(), 0); // the feature is added after drawend
        splitAlong(view, event.feature.getGeometry().getCoordinates());
      });
      map.addInteraction(view.draw);
      view.draw.setActive(!state.locked);
    }
  }

  /** Where the edit tools are off (region.js: a role or the assigned region), so is drawing a
   * split in XZ / YZ, as in the XY view. */
  function followLock() {
    for (const view of Object.values(views)) view.draw?.setActive(!state.locked);
  }

  /** The editor to send edits with and follow the tool of (made after this). */
  function attach(made) {
    editor = made;
    followTool(editor.tool);
    new MutationObserver(() => followTool(root.dataset.tool)).observe(root, { attributes: true,
      attributeFilter: ['data-tool'] });
  }

  /**
   * The nuclei in the kept level-0 label tiles of a view's plane on screen: per id its pixel
   * count and its extent in planes (z0..z1) and across (a0..a1: x in XZ, y in YZ), for the
   * tests and for finding a nucleus too tall for its neighbours.
   */
  function nucleiOn(plane) {
    const view = views[plane];
    if (!view) return [];
    const found = new Map();
    const index = indexOf(plane);
    const version = view.layers.showing().version;
    for (const tile of view.layers.labelTiles.tiles.values()) {
      if (tile.version !== version || tile.z !== index || tile.level !== 0) continue;
      tile.ids.forEach((id, i) => {
        if (id === 0) return;
        const row = tile.ty * TILE_SIZE + Math.floor(i / tile.width);
        const col = tile.tx * TILE_SIZE + (i % tile.width);
        const n = found.get(id) ?? { id, n: 0, r0: row, r1: row, a0: col, a1: col };
        n.n += 1;
        n.r0 = Math.min(n.r0, row);
        n.r1 = Math.max(n.r1, row);
        n.a0 = Math.min(n.a0, col);
        n.a1 = Math.max(n.a1, col);
        found.set(id, n);
      });
    }
    return [...found.values()].map((n) => ({ ...n, z0: planeAt(view, n.r0 + 0.5), z1: planeAt(view, n.r1 + 0.5),
      rows: view.rows }));
  }

  /** The map pixel of level-0 (z, across) in a view, for tests that click or draw there. */
  function pixelOf(plane, z, across) {
    const view = views[plane];
    return view ? view.layers.map.getPixelFromCoordinate(toCoordinate(rowOf(view, z), across + 0.5)) : null;
  }

  drawCursor();
  return {
    views,
    get layout() { return layout; },
    setLayout,
    setCursor,
    /** The XY view moved to plane z: the lines in XZ and YZ follow. */
    followZ: drawCursor,
    show,
    setLabelStyle(style) {
      for (const view of Object.values(views)) view.layers.setLabelStyle(style);
    },
    setLabelsVisible(visible) {
      for (const view of Object.values(views)) view.layers.setLabelsVisible(visible);
    },
    setHeatVisible(visible) {
      for (const view of Object.values(views)) view.layers.heatLayer.setVisible(visible);
    },
    setOpacity(opacity) {
      for (const view of Object.values(views)) view.layers.labelLayer.setOpacity(opacity);
    },
    pending: () => (layout === '3' ? Object.values(views).reduce((n, view) => n + view.layers.pending(), 0) : 0),
    nextFullRender,
    centreOn,
    attach,
    followLock,
    splitAlong,
    nucleiOn,
    pixelOf,
    /** The part of the address (#...&v=3&cy=&cx=) that brings this layout and cursor back. */
    placePart: () => (layout === '3' ? `&v=3&cy=${cursorOf.y}&cx=${cursorOf.x}` : ''),
    /** Take the layout and cursor from the address' parameters. */
    restore(place) {
      if (place.has('cy')) cursorOf.y = Math.max(0, Math.min(Y - 1, Number(place.get('cy')) || 0));
      if (place.has('cx')) cursorOf.x = Math.max(0, Math.min(X - 1, Number(place.get('cx')) || 0));
      show({});
      if (place.get('v') === '3') setLayout('3');
      drawCursor();
    },
  };
}
