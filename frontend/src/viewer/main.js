/**
 * The viewer page of one volume (frontend/templates/frontend/viewer.html): the map, the
 * plane and contrast controls, the label overlay, the nuclei queue, segmentation jobs and the
 * editing tools. The page's config comes from the server in <script id="viewer-config">.
 *
 * This module only puts the parts together, each from its module:
 *
 *   state.js      what is shown (plane, contrast, version, selection, busy, locked)
 *   dom.js        the template's elements, grouped by part
 *   banner.js     errors, conflicts and notices
 *   layers.js     the XY map; ortho.js the XZ / YZ views; region.js where one may edit
 *   controls.js   plane, contrast and overlay controls; versions.js the version on screen
 *   selection.js  picking, hovering and jumping to nuclei; nuclei.js the queue; mesh3d.js 3D
 *   jobs.js       segmentation jobs; live.js others' edits and presence
 *   edits.js      the tools and their corrections (draw3d.js adds tools across planes)
 *   keymap.js     every key, the tools' own included; help.js lists them
 *   place.js      the place on screen in the address
 *   hooks.js      what the browser tests and bench/viewer.py read (window.ezqViewer)
 *
 * They share `viewer`, the parts made so far; a part that needs one made after it reads it
 * from `viewer` when it runs, not when it is made. edits.js and draw3d.js use api, volumeId,
 * layers, root, banner, state, setVersion, setBusy, showApiError, idAt and editor.
 */

import 'ol/ol.css';

import { makeApi } from '../shared/api.js';
import { makeBanner } from './banner.js';
import { makeControls } from './controls.js';
import { findElements } from './dom.js';
import { makeDraw3d } from './draw3d.js';
import { makeEditor } from './edits.js';
import { makeGrid } from './grid.js';
import { makeHelp } from './help.js';
import { makeTestHooks } from './hooks.js';
import { makeJobPanel } from './jobs.js';
import { makeKeymap, viewerBindings } from './keymap.js';
import { colouring } from './labels.js';
import { makeMap } from './layers.js';
import { makeLivePanel } from './live.js';
import { makeMeshView } from './mesh3d.js';
import { makeNucleiPanel } from './nuclei.js';
import { makeOrthoViews } from './ortho.js';
import { makePlaceMemory, readPlace } from './place.js';
import { makeRegionGate } from './region.js';
import { makeSelection } from './selection.js';
import { makeState } from './state.js';
import { makeVersions } from './versions.js';

function main() {
  const elements = findElements();
  const config = JSON.parse(elements.config.textContent);
  const { volume } = config;
  const state = makeState(config);
  const viewer = {
    config, volume, volumeId: volume.id, state, elements, root: elements.root,
    api: makeApi({ base: config.api, csrfToken: config.csrf_token }),
    grid: makeGrid(volume),
  };
  const { api, grid, root } = viewer;
  viewer.banner = makeBanner(elements.banner, { onReload: () => viewer.versions.reload() });
  viewer.showApiError = viewer.banner.apiError;

  /** The state changed: mirror it for the tests, show whether an edit is in flight. */
  viewer.stateChanged = () => {
    viewer.hooks.mirror();
    elements.status.busy.hidden = !state.busy;
  };
  viewer.setBusy = (busy) => {
    state.busy = busy;
    viewer.editor?.refreshButtons();
    viewer.draw3d?.refresh();
    viewer.stateChanged();
  };

  // -- the XY map and the XZ / YZ views -----------------------------------------------------
  let tileErrorShown = false;
  const layers = makeMap({
    target: elements.map, grid, api: config.api, volumeId: volume.id,
    onLoadsChange: () => { // tiles load once the plane is shown (below): the parts exist by then
      viewer.hooks.tilesPending(layers.pending());
      viewer.controls.heatLoaded();
    },
    onTileError: (layer, status) => {
      if (layer === 'heat' || tileErrorShown) return;
      tileErrorShown = true; // once: a dropped connection fails every tile on screen
      const why = status === 401 || status === 403 ? 'your session has ended: sign in again'
        : status === 0 ? 'the server could not be reached' : `the server answered ${status}`;
      viewer.banner.show(`Some ${layer === 'image' ? 'image' : 'label'} tiles could not be loaded: ${why}.`,
        { kind: 'error' });
    },
  });
  const { map, view } = layers;
  viewer.layers = layers;
  viewer.idAt = (y, x) => layers.idAt(y, x);
  const hooks = makeTestHooks({ root, state, layers });
  viewer.hooks = hooks;
  viewer.place = makePlaceMemory({ state, view, placePart: () => viewer.ortho.placePart() });
  const ortho = makeOrthoViews({
    volume, api: config.api, root, xy: layers, state, banner: viewer.banner, elements: elements.ortho,
    setZ: (z) => viewer.controls.setZ(z), select: (ids) => viewer.select(ids), onPlace: () => viewer.place.remember(),
    onLoadsChange: () => hooks.tilesPending(layers.pending() + (viewer.ortho?.pending() ?? 0)),
    onTileError: (layer, status) => {
      if (layer !== 'heat') viewer.banner.show(`Some tiles of the XZ / YZ views could not be loaded (${status || 'no answer'}).`);
    },
  });
  viewer.ortho = ortho;

  // -- where this person may edit (region.js) -----------------------------------------------
  const gate = makeRegionGate({ config, map, elements: elements.region });
  gate.drawIn(ortho.views, { cursor: state.cursor, planes: volume.shape[0] }); // and in XZ, YZ
  viewer.refreshGate = () => {
    const locked = gate.update(state.z, view.getCenter());
    if (locked === state.locked) return;
    state.locked = locked;
    hooks.locked(locked);
    viewer.editor?.refreshButtons();
    viewer.draw3d?.refresh();
    viewer.ortho.followLock();
  };

  // -- controls, the version on screen, the selection and the queue -------------------------
  const controls = makeControls(viewer);
  viewer.controls = controls;
  const versions = makeVersions(viewer);
  viewer.versions = versions;
  viewer.setVersion = versions.show;
  const selection = makeSelection(viewer);
  viewer.select = selection.select;

  const nuclei = makeNucleiPanel({
    api, volumeId: volume.id, elements: elements.nuclei, onPick: selection.jumpTo, strategies: config.selection_strategies,
    // A student's queue keeps to the assigned region.
    accept: gate.regions ? (n) => gate.inside(Math.round(n.centroid_z), n.centroid_y, n.centroid_x) : null,
  });
  viewer.nuclei = nuclei;
  colouring.listeners.add(() => nuclei.recolour());
  const mesh = makeMeshView({ api, volumeId: volume.id, getVersion: () => state.version, elements: elements.mesh });
  viewer.mesh = mesh;
  elements.nuclei.next.addEventListener('click', selection.nextUncertain);

  // -- jobs; others' edits and who else is here ---------------------------------------------
  makeJobPanel({
    api, config, elements: elements.jobs,
    onSucceeded: async (job) => {
      await versions.show(job.label_version);
      const kept = job.kept_nuclei ? ` It kept the ${job.kept_nuclei} nucle${job.kept_nuclei === 1 ? 'us' : 'i'} `
        + 'people made, changed or checked; the model filled in the rest.' : '';
      viewer.banner.show(`Segmentation job ${job.id} finished: now showing ${job.label_version}.${kept}`, { kind: 'info' });
    },
    onError: (text) => viewer.banner.show(text, { kind: 'error' }),
  });
  viewer.live = makeLivePanel({
    config, state, elements: elements.live,
    addVersion: versions.add,
    showVersion: (name, edit) => versions.show(name, { edit }),
  });

  // -- editing ------------------------------------------------------------------------------
  viewer.draw3d = makeDraw3d({ viewer, volume, elements: elements.draw3d });
  const editor = makeEditor({ viewer, elements: elements.editor });
  viewer.editor = editor;
  ortho.attach(editor);
  viewer.refreshGate();
  map.on('moveend', viewer.refreshGate);

  // -- keys and their help ------------------------------------------------------------------
  let keymap = null;
  const help = makeHelp({ element: elements.help.box, rows: () => keymap.rows() });
  keymap = makeKeymap(() => viewerBindings({
    editor, controls, selection, state, help, mesh, colouring, hooks, overlay: elements.overlay, ortho,
  }));
  keymap.table(); // a key bound twice fails here, at start
  elements.help.open?.addEventListener('click', () => help.show());
  document.addEventListener('keydown', keymap.handle);

  // -- start --------------------------------------------------------------------------------
  const place = readPlace({ state, view, volume });
  map.on('moveend', viewer.place.remember);
  ortho.show({ lo: state.lo, hi: state.hi, version: state.version });
  ortho.restore(place); // #...&v=3&cy=&cx=: three views, the cursor

  controls.setZ(state.z);
  layers.show({ z: state.z, lo: state.lo, hi: state.hi, version: state.version });
  versions.render();
  versions.show(state.version).then(() => hooks.ready());
  hooks.expose({
    map, layers, ortho, editor, mesh, help, colouring, keymap, regions: gate, draw3d: viewer.draw3d,
    setZ: controls.setZ, setVersion: versions.show, select: selection.select, jumpTo: selection.jumpTo,
  });
}

main();
