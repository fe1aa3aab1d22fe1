/**
 * The viewer page of one volume (frontend/templates/frontend/viewer.html): the map, the
 * plane and contrast controls, the label overlay, the nuclei queue, segmentation jobs and the
 * editing tools. The page's config comes from the server in <script id="viewer-config">.
 *
 * `window.ezqViewer` exposes the state and timing marks for the browser tests and
 * bench/viewer.py; `#viewer`'s data attributes mirror the state (version, z, busy, tiles).
 */

import 'ol/ol.css';

import { ApiError, makeApi, resultsOf } from './api.js';
import { TILE_SIZE, makeGrid, toCoordinate, toYX, inside } from './grid.js';
import { makeMap } from './layers.js';
import { makeNucleiPanel } from './nuclei.js';
import { makeJobPanel } from './jobs.js';
import { makeEditor, TOOLS } from './edits.js';
import { makeOrthoViews } from './ortho.js';
import { makeLivePanel } from './live.js';
import { makeDraw3d } from './draw3d.js';
import { makeHelp } from './help.js';
import { makeMeshView } from './mesh3d.js';
import { makeRegionGate } from './region.js';
import { colouring } from './labels.js';

const $ = (id) => document.getElementById(id);

function main() {
  const config = JSON.parse($('viewer-config').textContent);
  const volume = config.volume;
  const root = $('viewer');
  const api = makeApi({ base: config.api, csrfToken: config.csrf_token });
  const grid = makeGrid(volume);
  const marks = { edits: [] };
  let editor = null; // made below, once the map and the panels exist
  let live = null; // others' edits and presence, made below
  let tileErrorShown = false;
  const state = {
    z: Math.floor(volume.shape[0] / 2),
    lo: volume.contrast_limits[0],
    hi: volume.contrast_limits[1],
    version: config.head,
    versions: [...config.label_versions],
    selection: [],
    busy: false,
    locked: '', // why the edit tools are off here ('' when they are on): region.js
  };

  // -- banner: errors, conflicts and notices ------------------------------------------------
  const banner = {
    show(text, { kind = 'error', reload = false } = {}) {
      $('banner').hidden = false;
      $('banner').dataset.kind = kind;
      $('banner-text').textContent = text;
      $('banner-reload').hidden = !reload;
    },
    hide() {
      $('banner').hidden = true;
    },
  };
  $('banner-close').addEventListener('click', banner.hide);

  function updateRoot() {
    root.dataset.version = state.version ?? '';
    root.dataset.z = String(state.z);
    root.dataset.busy = String(state.busy);
    root.dataset.selected = state.selection.join(',');
    $('status-busy').hidden = !state.busy;
  }

  const layers = makeMap({
    target: $('map'), grid, api: config.api, volumeId: volume.id,
    onLoadsChange: () => {
      root.dataset.tilesPending = String(layers.pending());
      const heatFailed = layers.loads.heat.errors > 0 && layers.heatLayer.getVisible();
      $('heatmap-note').textContent = heatFailed ? 'no heat map for some tiles of this version' : '';
    },
    onTileError: (layer, status) => {
      if (layer === 'heat' || tileErrorShown) return;
      tileErrorShown = true; // once: a dropped connection fails every tile on screen
      const why = status === 401 || status === 403 ? 'your session has ended: sign in again'
        : status === 0 ? 'the server could not be reached' : `the server answered ${status}`;
      banner.show(`Some ${layer === 'image' ? 'image' : 'label'} tiles could not be loaded: ${why}.`, { kind: 'error' });
    },
  });
  const { map, view } = layers;
  // The XZ and YZ views through the cursor (ortho.js), shown by the layout toggle.
  const ortho = makeOrthoViews({
    volume, api: config.api, root, xy: layers, state, banner,
    elements: { views: $('views'), xz: $('map-xz'), yz: $('map-yz'), toggle: $('layout-toggle'),
      statusPos: $('status-pos'), statusId: $('status-id') },
    setZ: (z) => setZ(z), select: (ids) => select(ids), onPlace: () => rememberPlace(),
    onLoadsChange: () => { root.dataset.tilesPending = String(layers.pending() + (ortho?.pending() ?? 0)); },
    onTileError: (layer, status) => {
      if (layer !== 'heat') banner.show(`Some tiles of the XZ / YZ views could not be loaded (${status || 'no answer'}).`);
    },
  });

  // -- version on screen --------------------------------------------------------------------
  function renderVersions() {
    const select = $('version-select');
    select.replaceChildren();
    if (state.versions.length === 0) {
      const option = document.createElement('option');
      option.textContent = 'none yet';
      option.value = '';
      select.append(option);
    }
    for (const name of state.versions) {
      const option = document.createElement('option');
      option.value = name;
      option.textContent = name === state.versions[state.versions.length - 1] ? `${name} (latest)` : name;
      select.append(option);
    }
    select.value = state.version ?? '';
    select.disabled = state.versions.length === 0;
    const latest = state.versions[state.versions.length - 1];
    const old = state.version !== null && state.version !== latest;
    $('head-version').textContent = state.version ? `labels ${state.version}${old ? ' · not the latest' : ''}` : 'no labels';
    $('head-version').classList.toggle('old', old);
    $('head-version').title = old ? `an older version: edits are made on the latest (${latest})` : 'the label version shown';
  }

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
   * Show label version `version`. After an edit, `edit` ({from, bbox}) lets the overlay keep
   * the tiles of `from` that the edit did not touch.
   */
  async function setVersion(version, { selection = [], editSent = null, answered = null, edit = null } = {}) {
    if (version && !state.versions.includes(version)) {
      state.versions.push(version);
      state.versions.sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    }
    state.version = version;
    state.selection = selection;
    renderVersions();
    live?.shown();
    layers.show({ version, edit });
    layers.setLabelStyle({ selected: selection });
    ortho.show({ version });
    ortho.setLabelStyle({ selected: selection });
    updateRoot();
    // In three views the overlay is drawn when all three are.
    const overlay = Promise.all([nextFullRender(), ortho.nextFullRender()]).then((times) => {
      const at = Math.max(...times);
      if (editSent !== null) {
        marks.edits.push({ version, sent: editSent, answered, overlay: at, ms: at - editSent,
          serverMs: answered - editSent, overlayMs: at - answered });
        root.dataset.lastEditMs = String(Math.round(at - editSent));
      }
      root.dataset.overlayVersion = version ?? '';
    });
    try {
      await nuclei.load(version, selection);
    } catch (error) {
      showApiError(error, 'The nuclei could not be loaded');
    }
    select(selection, { quiet: true });
    return overlay;
  }

  async function reload() {
    banner.hide();
    try {
      const detail = await api.get(`volumes/${volume.id}/`);
      const versions = resultsOf(await api.get(`volumes/${volume.id}/label-versions/`)).map((v) => v.name);
      state.versions = versions;
      const latest = detail.latest_label_version ?? versions[versions.length - 1] ?? null;
      await setVersion(latest);
      banner.show(`Reloaded: now showing ${latest ?? 'no labels'}.`, { kind: 'info' });
    } catch (error) {
      showApiError(error, 'Could not reload');
    }
  }
  $('banner-reload').addEventListener('click', reload);

  function showApiError(error, what) {
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
  }

  function setBusy(busy) {
    state.busy = busy;
    editor?.refreshButtons();
    draw3d?.refresh();
    updateRoot();
  }

  // -- where this person may edit (region.js) -----------------------------------------------
  let draw3d = null; // the tools across planes, made with the editor below
  const gate = makeRegionGate({ config, map, elements: { note: $('region-note') } });
  gate.drawIn(ortho.views, { cursor: state.cursor, planes: volume.shape[0] }); // and in XZ, YZ
  function refreshGate() {
    const locked = gate.update(state.z, view.getCenter());
    if (locked === state.locked) return;
    state.locked = locked;
    root.dataset.locked = locked ? 'true' : 'false';
    editor?.refreshButtons();
    draw3d?.refresh();
  }

  // -- plane, contrast, overlay controls ----------------------------------------------------
  function setZ(z) {
    const next = Math.max(0, Math.min(volume.shape[0] - 1, Math.round(z)));
    if (next === state.z && layers.showing().z === next) return;
    state.z = next;
    $('z-slider').value = String(next);
    $('z-value').textContent = String(next);
    $('status-z').textContent = `z ${next} / ${volume.shape[0] - 1}`;
    layers.show({ z: next });
    editor?.followPlane(next);
    ortho.followZ(next);
    draw3d?.refresh();
    refreshGate();
    updateRoot();
    rememberPlace();
  }
  $('z-slider').addEventListener('input', (event) => setZ(Number(event.target.value)));

  let contrastTimer = null;
  function applyContrast() {
    const lo = Number($('contrast-lo').value);
    const hi = Number($('contrast-hi').value);
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo >= hi) {
      $('contrast-lo').setCustomValidity('low must be below high');
      $('contrast-lo').reportValidity();
      return;
    }
    $('contrast-lo').setCustomValidity('');
    state.lo = lo;
    state.hi = hi;
    layers.show({ lo, hi });
    ortho.show({ lo, hi });
  }
  for (const id of ['contrast-lo', 'contrast-hi']) {
    $(id).addEventListener('input', () => {
      clearTimeout(contrastTimer);
      contrastTimer = setTimeout(applyContrast, 250);
    });
  }
  const shown = (value) => String(Number(value.toPrecision(6)));
  $('contrast-reset').addEventListener('click', () => {
    $('contrast-lo').value = shown(volume.contrast_limits[0]);
    $('contrast-hi').value = shown(volume.contrast_limits[1]);
    applyContrast();
  });
  $('contrast-lo').value = shown(state.lo);
  $('contrast-hi').value = shown(state.hi);

  $('labels-visible').addEventListener('change', (e) => {
    layers.setLabelsVisible(e.target.checked);
    ortho.setLabelsVisible(e.target.checked);
  });
  // Under the heat map the labels are drawn as outlines, so its colours read as they are.
  const outlines = () => {
    const outline = $('labels-outline').checked || $('heatmap-visible').checked;
    layers.setLabelStyle({ outline });
    ortho.setLabelStyle({ outline });
  };
  $('labels-outline').addEventListener('change', outlines);
  $('heatmap-visible').addEventListener('change', (e) => {
    layers.heatLayer.setVisible(e.target.checked);
    ortho.setHeatVisible(e.target.checked);
    outlines();
  });
  $('labels-opacity').addEventListener('input', (e) => {
    layers.labelLayer.setOpacity(Number(e.target.value) / 100);
    ortho.setOpacity(Number(e.target.value) / 100);
    $('opacity-value').textContent = `${e.target.value} %`;
  });
  $('version-select').addEventListener('change', (e) => setVersion(e.target.value || null));

  // -- selection, hover, nuclei queue -------------------------------------------------------
  function select(ids, { quiet = false } = {}) {
    state.selection = [...new Set(ids.filter((id) => id > 0))];
    layers.setLabelStyle({ selected: state.selection });
    ortho.setLabelStyle({ selected: state.selection });
    nuclei.highlight(state.selection);
    const text = $('selection-text');
    if (state.selection.length === 0) {
      text.textContent = 'Nothing selected.';
    } else if (state.selection.length === 1) {
      const n = nuclei.get(state.selection[0]);
      text.textContent = n
        ? `#${n.label_id}: z ${n.z_min}–${n.z_max}, ${n.volume_voxels.toLocaleString()} voxels, uncertainty `
          + `${n.uncertainty === null ? '—' : n.uncertainty.toFixed(3)}`
          + ({ checked: ' · checked ✓', edited: ' · edited by a person' }[n.curation] ?? '')
        : `#${state.selection[0]}`;
    } else {
      text.textContent = `${state.selection.length} nuclei: #${state.selection.join(', #')}`;
    }
    editor?.refreshButtons();
    mesh.follow(state.selection.length === 1 ? state.selection[0] : null);
    updateRoot();
    if (!quiet) map.render();
  }

  function jumpTo(nucleus) {
    setZ(nucleus.centroid_z);
    const planes = nucleus.z_max - nucleus.z_min + 1;
    const diameter = 2 * Math.sqrt(nucleus.volume_voxels / planes / Math.PI);
    const [w, h] = map.getSize() ?? [800, 600];
    // As close as the view allows (minResolution, 16x): a small nucleus fills a fifth of the map.
    const resolution = Math.max(view.getMinResolution(), Math.min((diameter * 5) / Math.min(w, h), 2 ** (grid.levels - 1)));
    view.animate({ center: toCoordinate(nucleus.centroid_y, nucleus.centroid_x), resolution, duration: 250 });
    select([nucleus.label_id]);
    ortho.centreOn(nucleus);
  }

  const nuclei = makeNucleiPanel({
    api, volumeId: volume.id,
    elements: { list: $('nuclei-list'), count: $('nuclei-count'), next: $('next-uncertain') },
    onPick: jumpTo,
    // A student's queue keeps to the assigned region.
    accept: gate.regions ? (n) => gate.inside(Math.round(n.centroid_z), n.centroid_y, n.centroid_x) : null,
  });
  colouring.listeners.add(() => nuclei.recolour());
  const mesh = makeMeshView({
    api, volumeId: volume.id, getVersion: () => state.version,
    elements: { panel: $('mesh-panel'), canvas: $('mesh-canvas'), profile: $('mesh-profile'), info: $('mesh-info'),
      signs: $('mesh-signs') },
  });
  function nextUncertain() {
    const next = nuclei.next(state.selection[0]);
    if (next) jumpTo(next);
  }
  $('next-uncertain').addEventListener('click', nextUncertain);

  let hoverFrame = null;
  map.on('pointermove', (event) => {
    if (event.dragging) return;
    const coordinate = event.coordinate;
    if (hoverFrame !== null) return;
    hoverFrame = requestAnimationFrame(() => {
      hoverFrame = null;
      const [y, x] = toYX(coordinate);
      if (!inside(grid, [y, x])) {
        $('status-pos').textContent = '—';
        $('status-id').textContent = 'nucleus —';
        root.dataset.hoverId = '';
        return;
      }
      $('status-pos').textContent = `y ${Math.floor(y)} · x ${Math.floor(x)}`;
      const id = layers.idAt(y, x);
      $('status-id').textContent = id === null ? 'nucleus ?' : (id === 0 ? 'background' : `nucleus #${id}`);
      root.dataset.hoverId = id === null ? '' : String(id);
      map.getTargetElement().classList.toggle('over-nucleus', Boolean(id));
    });
  });
  map.on('singleclick', (event) => {
    const tool = editor.tool;
    if (tool !== 'select' && tool !== 'merge') return;
    const [y, x] = toYX(event.coordinate);
    const id = inside(grid, [y, x]) ? layers.idAt(y, x) : 0;
    if (inside(grid, [y, x])) ortho.setCursor({ y, x }); // the XZ and YZ views follow the click
    if (!id) {
      if (tool === 'select' && !event.originalEvent.shiftKey) select([]);
      return;
    }
    const picked = state.selection.includes(id);
    if (tool === 'merge') {
      // Merge adds what is clicked and keeps what is picked (the two halves of a split stay
      // picked); shift-click takes one out.
      if (event.originalEvent.shiftKey) select(state.selection.filter((s) => s !== id));
      else if (!picked) select([...state.selection, id]);
    } else if (event.originalEvent.shiftKey) {
      select(picked ? state.selection.filter((s) => s !== id) : [...state.selection, id]);
    } else {
      select([id]);
    }
  });

  // -- jobs ---------------------------------------------------------------------------------
  makeJobPanel({
    api, config,
    elements: {
      form: $('job-form'), model: $('job-model'), diameter: $('job-diameter'), backend: $('job-backend'),
      restoration: $('job-restoration'), vz: $('job-vz'), vy: $('job-vy'), vx: $('job-vx'),
      start: $('job-start'), cancel: $('job-cancel'), status: $('job-status'), progress: $('job-progress'),
      text: $('job-text'), curation: $('job-curation'), curationText: $('job-curation-text'),
      fromScratch: $('job-from-scratch'),
    },
    onSucceeded: async (job) => {
      await setVersion(job.label_version);
      const kept = job.kept_nuclei ? ` It kept the ${job.kept_nuclei} nucle${job.kept_nuclei === 1 ? 'us' : 'i'} `
        + 'people made, changed or checked; the model filled in the rest.' : '';
      banner.show(`Segmentation job ${job.id} finished: now showing ${job.label_version}.${kept}`, { kind: 'info' });
    },
    onError: (text) => banner.show(text, { kind: 'error' }),
  });

  // -- others' edits, who else is here ------------------------------------------------------
  live = makeLivePanel({
    config, state,
    elements: { notice: $('live-notice'), text: $('live-notice-text'), show: $('live-show'), presence: $('presence') },
    addVersion: (name) => {
      if (state.versions.includes(name)) return;
      state.versions.push(name);
      state.versions.sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
      renderVersions();
    },
    showVersion: (name, edit) => setVersion(name, { edit }),
  });

  // -- editing ------------------------------------------------------------------------------
  const viewer = {
    api, volumeId: volume.id, layers, root, banner, state,
    setVersion, setBusy, showApiError,
    idAt: (y, x) => layers.idAt(y, x),
  };
  draw3d = makeDraw3d({
    viewer, volume,
    elements: { ballRadius: $('ball-radius'), sections: $('sections-text'), apply: $('sections-apply'),
      clear: $('sections-clear'), onto: $('sections-onto') },
  });
  editor = makeEditor({
    viewer,
    elements: {
      tools: [...document.querySelectorAll('button.tool')], radius: $('brush-radius'),
      zThis: $('zrange-this'), zFrom: $('zrange-from'), zTo: $('zrange-to'), zInputs: $('zrange-inputs'),
      undo: $('undo'), redo: $('redo'), mergeApply: $('merge-apply'), deleteApply: $('delete-apply'),
      checkApply: $('check-apply'),
      log: $('edit-log'), status: $('status-tool'),
    },
  });
  ortho.attach(editor);
  viewer.editor = editor;
  refreshGate();
  map.on('moveend', refreshGate);
  const help = makeHelp({ element: $('help') });
  $('help-open')?.addEventListener('click', () => help.show());

  // -- keyboard -----------------------------------------------------------------------------
  const toolKeys = Object.fromEntries(Object.entries(TOOLS).map(([name, t]) => [t.key, name]));
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const typing = target instanceof HTMLElement
      && (target.isContentEditable || ['INPUT', 'SELECT', 'TEXTAREA'].includes(target.tagName))
      && !(target instanceof HTMLInputElement && ['checkbox', 'range', 'radio'].includes(target.type));
    if (typing && event.key !== 'Escape') return;
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key;
    let handled = true;
    if (ctrl && (key === 'z' || key === 'Z')) {
      if (event.shiftKey) editor.redo();
      else editor.undo();
    } else if (ctrl && (key === 'y' || key === 'Y')) {
      editor.redo();
    } else if (ctrl || event.altKey) {
      handled = false;
    } else if (key === ',' || key === 'PageDown') {
      setZ(state.z - 1);
    } else if (key === '.' || key === 'PageUp') {
      setZ(state.z + 1);
    } else if (key === '?') {
      help.toggle();
    } else if (key === 'c') {
      colouring.shuffle(); // every view repaints, the queue's swatches too
      root.dataset.colourSeed = String(colouring.seed);
    } else if (key === 'd') {
      mesh.toggle();
    } else if (key === 'y') {
      editor.checkSelected();
    } else if (key === 'n') {
      nextUncertain();
    } else if (key === 'o') {
      $('labels-outline').click();
    } else if (key === 'l') {
      $('labels-visible').click();
    } else if (key === 'h') {
      $('heatmap-visible').click();
    } else if (key === '[' || key === ']') {
      const input = $('brush-radius');
      input.value = String(Math.max(1, Number(input.value) + (key === ']' ? 1 : -1)));
    } else if (key === 'Enter') {
      editor.enter();
    } else if (key === 'Escape') {
      if (help.open) help.hide();
      else if (!editor.escape()) select([]);
    } else if (key === 'Delete' || key === 'Backspace') {
      if (!editor.removeLastPoint()) editor.deleteSelected();
    } else if (key in toolKeys) {
      editor.setTool(toolKeys[key]);
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });

  // -- start --------------------------------------------------------------------------------
  map.once('rendercomplete', () => {
    marks.firstFullRender = performance.now();
    root.dataset.firstRenderMs = String(Math.round(marks.firstFullRender));
  });
  map.on('rendercomplete', () => { root.dataset.rendered = String(performance.now()); });
  // The place on screen lives in the address (#z=&y=&x=&r=), so a view can be shared or reloaded.
  const place = new URLSearchParams(window.location.hash.slice(1));
  if (place.has('z')) state.z = Math.max(0, Math.min(volume.shape[0] - 1, Number(place.get('z')) || 0));
  if (place.has('y') && place.has('x')) {
    view.setCenter(toCoordinate(Number(place.get('y')), Number(place.get('x'))));
    if (place.has('r')) view.setResolution(Number(place.get('r')));
  }
  let placeTimer = null;
  function rememberPlace() {
    clearTimeout(placeTimer);
    placeTimer = setTimeout(() => {
      const center = view.getCenter();
      if (!center) return;
      const [y, x] = toYX(center);
      const r = view.getResolution();
      window.history.replaceState(null, '',
        `#z=${state.z}&y=${Math.round(y)}&x=${Math.round(x)}&r=${Number(r.toPrecision(3))}${ortho.placePart()}`);
    }, 300);
  }
  map.on('moveend', rememberPlace);
  ortho.show({ lo: state.lo, hi: state.hi, version: state.version });
  ortho.restore(place); // #...&v=3&cy=&cx=: three views, the cursor

  setZ(state.z);
  layers.show({ z: state.z, lo: state.lo, hi: state.hi, version: state.version });
  renderVersions();
  setVersion(state.version).then(() => {
    root.dataset.state = 'ready';
  });
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

  window.ezqViewer = {
    state, marks, map, layers, setZ, setVersion, select, jumpTo, editor, nextFullRender, nucleiOnPlane, ortho,
    mesh, draw3d, help, colouring, regions: gate,
  };
}

main();
