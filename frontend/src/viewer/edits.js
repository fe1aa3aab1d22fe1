/**
 * Editing: the tools that draw on the map, the typed correction records they send to the API
 * (`POST volumes/{id}/corrections/`), and undo/redo of this page's edits.
 *
 * Every edit names the label version it was made on; the answer's `result_version` becomes the
 * version on screen. If someone else moved the volume on meanwhile, the API answers 409 and
 * the page says so and offers to reload: nothing is overwritten.
 */

import Draw from 'ol/interaction/Draw.js';
import Style from 'ol/style/Style.js';
import Stroke from 'ol/style/Stroke.js';
import Fill from 'ol/style/Fill.js';
import CircleStyle from 'ol/style/Circle.js';

import { toYX } from './grid.js';

const SKETCH = '#ffd23f';

const sketchStyle = new Style({
  stroke: new Stroke({ color: SKETCH, width: 2 }),
  fill: new Fill({ color: 'rgba(255, 210, 63, 0.15)' }),
  image: new CircleStyle({ radius: 5, fill: new Fill({ color: SKETCH }), stroke: new Stroke({ color: '#000', width: 1 }) }),
});

function brushStyle(radius, erase) {
  const colour = erase ? 'rgba(255, 80, 80, 0.55)' : 'rgba(255, 210, 63, 0.55)';
  return (feature, resolution) => new Style({
    stroke: new Stroke({ color: colour, width: Math.max(1, (2 * radius()) / resolution), lineCap: 'round',
      lineJoin: 'round' }),
    image: new CircleStyle({ radius: Math.max(2, radius() / resolution), fill: new Fill({ color: colour }) }),
  });
}

/**
 * The tools, each defined here once: `label` (the status bar, the help), `key`, `text` and
 * `title` (its button), `sends` (the kinds of correction it makes) and `drawing` (what it
 * draws: one of a kind's `drawings`, none for a tool that picks nuclei); a drawing tool also
 * has `makeDraw(common, context)` (its OpenLayers interaction) and `onDrawEnd(geometry,
 * context)` (the correction it sends), and may answer `enter(draw, context)`,
 * `escape(context)` and `removeLastPoint(draw)`. draw3d.js adds its tools here the same way.
 *
 * The page offers the tools whose kinds the server lists (`config.edit_kinds`, from
 * segmentation.core.editing.EDIT_KINDS) with the drawing they take, and makes their buttons;
 * context: {correct, zRange, radius, viewer, sketchSource, line, seed, polygon, stroke, draw}.
 */
export const TOOLS = {
  select: { label: 'select', key: 'v', text: 'Select', title: 'Select a nucleus (shift: add to selection)', sends: [] },
  'split-line': {
    label: 'split: draw a line across the nucleus', key: 's', text: 'Split line',
    title: 'Split: draw a line across the nucleus (two clicks)', sends: ['split'], drawing: 'line',
    makeDraw: (common) => new Draw({ ...common, type: 'LineString', maxPoints: 2, style: sketchStyle }),
    onDrawEnd: (geometry, context) => context.line(geometry.getCoordinates()),
  },
  'split-seeds': {
    label: 'split: place two seeds', key: 'x', text: 'Split seeds', title: 'Split: place one seed in each part',
    sends: ['split'], drawing: 'seeds',
    makeDraw: (common) => new Draw({ ...common, type: 'Point', style: sketchStyle }),
    onDrawEnd: (geometry, context) => context.seed(geometry.getCoordinates()),
  },
  merge: {
    label: 'merge: click nuclei, then Enter', key: 'm', text: 'Merge', title: 'Merge: click two or more nuclei, then Enter',
    sends: ['merge'],
  },
  'add-polygon': {
    label: 'add: click the outline, Enter to finish', key: 'a', text: 'Add polygon',
    title: 'Add a nucleus: click its outline, Enter or click the first point to finish', sends: ['add'],
    drawing: 'polygon',
    makeDraw: (common) => new Draw({ ...common, type: 'Polygon', style: sketchStyle }),
    onDrawEnd: (geometry, context) => context.polygon(geometry.getCoordinates()),
    enter: (draw) => draw?.finishDrawing(),
    removeLastPoint(draw) {
      draw?.removeLastPoint();
      return Boolean(draw);
    },
  },
  'add-brush': {
    label: 'add: paint a new nucleus', key: 'b', text: 'Add brush', title: 'Add a nucleus: paint it', sends: ['add'],
    drawing: 'stroke',
    makeDraw: (common, context) => new Draw({ ...common, type: 'LineString', freehand: true,
      style: brushStyle(context.radius, false) }),
    onDrawEnd: (geometry, context) => context.stroke(geometry.getCoordinates(), { type: 'add', erase: false }),
  },
  'modify-brush': {
    label: 'brush: paint onto the selected nucleus', key: 'g', text: 'Brush',
    title: 'Grow the selected nucleus with the brush', sends: ['modify'], drawing: 'stroke',
    makeDraw: (common, context) => new Draw({ ...common, type: 'LineString', freehand: true,
      style: brushStyle(context.radius, false) }),
    onDrawEnd: (geometry, context) => context.stroke(geometry.getCoordinates(), { type: 'modify', erase: false }),
  },
  'modify-erase': {
    label: 'eraser: erase from the selected nucleus', key: 'e', text: 'Eraser', title: 'Erase from the selected nucleus',
    sends: ['modify'], drawing: 'stroke',
    makeDraw: (common, context) => new Draw({ ...common, type: 'LineString', freehand: true,
      style: brushStyle(context.radius, true) }),
    onDrawEnd: (geometry, context) => context.stroke(geometry.getCoordinates(), { type: 'modify', erase: true }),
  },
};

/** The names of the tools the server's kinds allow (`kinds`: config.edit_kinds), in TOOLS' order:
 * each kind a tool sends is listed and takes the tool's drawing. */
export function offeredTools(kinds) {
  const byName = new Map(kinds.map((kind) => [kind.name, kind]));
  return Object.entries(TOOLS).filter(([, tool]) => tool.sends.every((name) => byName.has(name)
    && (!tool.drawing || byName.get(name).drawings.includes(tool.drawing)))).map(([name]) => name);
}

function toolButton(name, tool) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'tool';
  button.dataset.tool = name;
  button.title = tool.title ?? tool.label;
  const key = document.createElement('kbd');
  key.textContent = tool.key;
  button.append(`${tool.text ?? name} `, key);
  return button;
}

const round = (v) => Math.round(v * 100) / 100;
const points = (coordinates) => coordinates.map((c) => toYX(c).map(round));

export function makeEditor({ viewer, elements }) {
  const { api, volumeId } = viewer;
  const { map, sketchSource, doubleClickZoom } = viewer.layers;
  const kinds = new Map(viewer.config.edit_kinds.map((kind) => [kind.name, kind]));
  const offered = new Set(offeredTools(viewer.config.edit_kinds));
  elements.tools = [...offered].map((name) => toolButton(name, TOOLS[name]));
  elements.toolbox.replaceChildren(...elements.tools);
  const done = []; // this page's edits, oldest first: correction records
  const undone = []; // undone ones that redo can bring back, last undone on top
  const checks = []; // this page's check marks (confirm records): undo withdraws them, no redo
  const withdrawn = new Set(); // ids of the checks withdrawn here
  let tool = 'select';
  let draw = null;
  let seeds = [];

  const radius = () => Math.max(1, Number(elements.radius.value) || 6);

  function zRange() {
    const z = viewer.state.z;
    if (elements.zThis.checked) return [z, z];
    const from = Number(elements.zFrom.value);
    const to = Number(elements.zTo.value);
    return [Math.min(from, to), Math.max(from, to)];
  }

  /** The id most often under the points of a line (sampled every pixel or so), ignoring 0. */
  function idUnderLine(coordinates) {
    const counts = new Map();
    for (let i = 0; i + 1 < coordinates.length; i += 1) {
      const [y0, x0] = toYX(coordinates[i]);
      const [y1, x1] = toYX(coordinates[i + 1]);
      const steps = Math.max(1, Math.ceil(Math.hypot(y1 - y0, x1 - x0)));
      for (let s = 0; s <= steps; s += 1) {
        const id = viewer.idAt(y0 + ((y1 - y0) * s) / steps, x0 + ((x1 - x0) * s) / steps);
        if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
      }
    }
    const selected = viewer.state.selection;
    if (selected.length === 1 && counts.has(selected[0])) return selected[0];
    let best = null;
    for (const [id, n] of counts) if (best === null || n > counts.get(best)) best = id;
    return best;
  }

  function renderLog() {
    elements.log.replaceChildren();
    for (const record of checks.slice().reverse()) { // checks change no labels: no new version
      const item = document.createElement('li');
      item.dataset.correctionId = String(record.id);
      item.dataset.type = record.type;
      item.className = withdrawn.has(record.id) ? 'undone' : '';
      item.textContent = `checked #${record.nucleus_ids.join(', #')} (${record.label_version})`
        + (withdrawn.has(record.id) ? ' · withdrawn' : '');
      elements.log.append(item);
    }
    for (const record of [...done, ...undone.slice().reverse()].reverse()) {
      const item = document.createElement('li');
      const isUndone = undone.includes(record);
      item.className = isUndone ? 'undone' : '';
      item.dataset.correctionId = String(record.id);
      item.dataset.type = record.type;
      const ids = record.nucleus_ids?.length ? ` #${record.nucleus_ids.join(', #')}` : '';
      const made = record.new_ids?.length ? ` → #${record.new_ids.join(', #')}` : '';
      const kind = record.type === 'modify' && record.geometry?.erase ? 'erase' : record.type;
      item.textContent = `${kind}${ids}${made} (${record.label_version} → ${record.result_version})`
        + (record.redo_of ? ' · redo' : '') + (isUndone ? ' · undone' : '');
      elements.log.append(item);
    }
    refreshButtons();
  }

  function refreshButtons() {
    const busy = viewer.state.busy;
    const locked = Boolean(viewer.state.locked); // no editing here (role, assigned region): why
    elements.undo.disabled = busy || locked || (done.length === 0 && lastCheck() === null);
    elements.redo.disabled = busy || locked || undone.length === 0;
    const n = viewer.state.selection.length;
    // Each button names as many nuclei as its kind takes (EditKind.nuclei), or is hidden.
    for (const [button, name] of [[elements.mergeApply, 'merge'], [elements.deleteApply, 'delete'],
      [elements.checkApply, 'confirm']]) {
      const kind = kinds.get(name);
      button.hidden = !kind;
      const [low, high] = kind?.nuclei ?? [1, 0];
      button.disabled = busy || locked || n < Math.max(low, 1) || (high !== null && n > high);
    }
    for (const button of elements.tools) {
      button.disabled = locked && button.dataset.tool !== 'select';
      button.title = locked && button.dataset.tool !== 'select' ? viewer.state.locked : (button.dataset.title ?? '');
    }
    if (draw) draw.setActive(!busy && !locked);
  }

  async function send(what, run) {
    if (viewer.state.locked) {
      viewer.banner.show(viewer.state.locked, { kind: 'info' });
      return null;
    }
    if (viewer.state.busy) {
      viewer.banner.show('Wait for the edit in progress to finish.', { kind: 'info' });
      return null;
    }
    if (viewer.state.version === null) {
      viewer.banner.show('There are no labels to edit yet: run a segmentation first.', { kind: 'error' });
      return null;
    }
    viewer.setBusy(true, what);
    viewer.banner.hide();
    try {
      return await run();
    } catch (error) {
      viewer.showApiError(error, `The ${what} was not made`);
      return null;
    } finally {
      viewer.setBusy(false);
      refreshButtons();
    }
  }

  /** What the overlay may keep after an edit of `from`: everything outside the record's
   * bounding box ([z0, z1, y0, y1, x0, x1), level 0), if the record gives one. */
  function changed(from, record) {
    const bbox = record?.bbox;
    return Array.isArray(bbox) && bbox.length === 6 ? { from, bbox } : null;
  }

  /** Send one correction made on the version on screen; show its result. */
  async function correct(body, selectAfter = (record) => record.new_ids ?? []) {
    return send(body.type, async () => {
      const sent = performance.now();
      const from = viewer.state.version;
      const record = await api.post(`volumes/${volumeId}/corrections/`, {
        label_version: from, z: viewer.state.z, ...body,
      });
      const answered = performance.now();
      done.push(record);
      undone.length = 0;
      renderLog();
      await viewer.setVersion(record.result_version, {
        selection: selectAfter(record), editSent: sent, answered, edit: changed(from, record),
      });
      return record;
    });
  }

  function lastCheck() {
    for (let i = checks.length - 1; i >= 0; i -= 1) if (!withdrawn.has(checks[i].id)) return checks[i];
    return null;
  }

  /** Undo of a check: its mark comes off the nucleus; the labels stay as they are. */
  async function withdrawCheck(record) {
    await send('undo', async () => {
      await api.post(`corrections/${record.id}/undo/`, { label_version: viewer.state.version });
      withdrawn.add(record.id);
      renderLog();
      await viewer.setVersion(viewer.state.version, { selection: record.nucleus_ids });
    });
  }

  async function undo() {
    const check = lastCheck();
    if (check !== null && (done.length === 0 || check.id > done[done.length - 1].id)) {
      await withdrawCheck(check);
      return;
    }
    if (done.length === 0) return;
    const record = done[done.length - 1];
    await send('undo', async () => {
      const sent = performance.now();
      const from = viewer.state.version;
      const answer = await api.post(`corrections/${record.id}/undo/`, { label_version: from });
      const answered = performance.now();
      done.pop();
      undone.push(record);
      renderLog();
      await viewer.setVersion(answer.result_version, {
        selection: record.nucleus_ids ?? [], editSent: sent, answered, edit: changed(from, answer.correction),
      });
    });
  }

  async function redo() {
    if (undone.length === 0) return;
    const record = undone[undone.length - 1];
    await send('redo', async () => {
      const sent = performance.now();
      const from = viewer.state.version;
      const answer = await api.post(`corrections/${record.id}/redo/`, { label_version: from });
      const answered = performance.now();
      undone.pop();
      done.push(answer.correction);
      renderLog();
      await viewer.setVersion(answer.result_version, {
        selection: answer.correction.new_ids ?? [], editSent: sent, answered, edit: changed(from, answer.correction),
      });
    });
  }

  function mergeSelected() {
    const ids = viewer.state.selection;
    if (ids.length < 2) {
      viewer.banner.show('Pick two or more nuclei to merge (merge tool, or shift-click).', { kind: 'info' });
      return;
    }
    correct({ type: 'merge', nucleus_ids: [...ids] });
  }

  function deleteSelected() {
    const ids = viewer.state.selection;
    if (ids.length === 0) {
      viewer.banner.show('Select the nucleus to delete first.', { kind: 'info' });
      return;
    }
    correct({ type: 'delete', nucleus_ids: [...ids] }, () => []);
  }

  /** "This nucleus is right": a check mark (a correction of its own kind, reviewed like the
   * others, training data once approved; a new segmentation keeps the nucleus). */
  function checkSelected() {
    const ids = viewer.state.selection;
    if (ids.length !== 1) {
      viewer.banner.show('Select the one nucleus that is right first (select tool, click it).', { kind: 'info' });
      return;
    }
    send('check', async () => {
      const record = await api.post(`volumes/${volumeId}/corrections/`, {
        label_version: viewer.state.version, z: viewer.state.z, type: 'confirm', nucleus_ids: [ids[0]],
      });
      checks.push(record);
      renderLog();
      await viewer.setVersion(viewer.state.version, { selection: [ids[0]] }); // the list shows the mark
      viewer.banner.show(`Nucleus #${ids[0]} checked: it waits for review like any correction.`, { kind: 'info' });
      return record;
    });
  }

  function onLine(coordinates) {
    const id = idUnderLine(coordinates);
    if (!id) {
      viewer.banner.show('Draw the line across a nucleus: it touched none.', { kind: 'error' });
      return;
    }
    correct({ type: 'split', nucleus_ids: [id], line: points(coordinates) });
  }

  function onSeed(coordinate) {
    seeds.push(coordinate);
    if (seeds.length < 2) return;
    const placed = seeds;
    seeds = [];
    setTimeout(() => sketchSource.clear(), 0);
    const ids = placed.map((c) => viewer.idAt(...toYX(c)));
    const selected = viewer.state.selection;
    let id = ids[0] && ids[0] === ids[1] ? ids[0] : null;
    if (id === null && selected.length === 1 && ids.includes(selected[0])) id = selected[0];
    if (!id) {
      viewer.banner.show('Place both seeds inside the nucleus to split.', { kind: 'error' });
      return;
    }
    correct({ type: 'split', nucleus_ids: [id], seeds: points(placed) });
  }

  function onPolygon(rings) {
    const ring = rings[0];
    if (ring.length < 4) return; // closed ring: at least a triangle
    correct({ type: 'add', nucleus_ids: [], polygon: points(ring.slice(0, -1)), z_range: zRange() });
  }

  function onStroke(coordinates, { type, erase }) {
    const stroke = { points: points(coordinates), radius: radius(), erase };
    if (type === 'add') {
      correct({ type: 'add', nucleus_ids: [], stroke, z_range: zRange() });
      return;
    }
    let id = viewer.state.selection.length === 1 ? viewer.state.selection[0] : null;
    if (id === null) id = viewer.idAt(...toYX(coordinates[0])) || null;
    if (id === null) {
      viewer.banner.show('Select the nucleus to change first (select tool, click it).', { kind: 'error' });
      return;
    }
    correct({ type: 'modify', nucleus_ids: [id], stroke, z_range: zRange() }, () => [id]);
  }

  function setTool(name) {
    if (!offered.has(name)) return;
    if (draw) {
      draw.abortDrawing();
      map.removeInteraction(draw);
      draw = null;
    }
    seeds = [];
    sketchSource.clear();
    tool = name;
    draw = TOOLS[name].makeDraw?.({ source: sketchSource, stopClick: true }, context) ?? null;
    // Two quick clicks on two nuclei with the merge tool are picks, not a double-click zoom.
    doubleClickZoom.forEach((i) => i.setActive(draw === null && name !== 'merge'));
    if (draw) {
      draw.on('drawend', (event) => {
        const geometry = event.feature.getGeometry();
        const kept = geometry.getType() === 'Point';
        if (!kept) setTimeout(() => sketchSource.clear(), 0); // the feature is added after drawend
        TOOLS[name].onDrawEnd?.(geometry, context);
      });
      map.addInteraction(draw);
      draw.setActive(!viewer.state.busy);
    }
    TOOLS[name].onSelect?.(context);
    for (const button of elements.tools) {
      const on = button.dataset.tool === name;
      button.classList.toggle('active', on);
      button.setAttribute('aria-pressed', String(on));
    }
    map.getTargetElement().dataset.tool = name;
    elements.status.textContent = `tool: ${TOOLS[name].label}`;
    viewer.root.dataset.tool = name;
  }

  // What the tools of other modules may use (see TOOLS).
  const context = {
    correct, zRange, radius, viewer, sketchSource, line: onLine, seed: onSeed, polygon: onPolygon, stroke: onStroke,
    get draw() { return draw; },
  };
  for (const button of elements.tools) {
    button.dataset.title = button.title;
    button.addEventListener('click', () => setTool(button.dataset.tool));
  }
  elements.undo.addEventListener('click', undo);
  elements.redo.addEventListener('click', redo);
  elements.mergeApply.addEventListener('click', mergeSelected);
  elements.deleteApply.addEventListener('click', deleteSelected);
  elements.checkApply.addEventListener('click', checkSelected);
  elements.zThis.addEventListener('change', () => {
    elements.zInputs.classList.toggle('disabled', elements.zThis.checked);
    for (const input of elements.zInputs.querySelectorAll('input')) input.disabled = elements.zThis.checked;
  });
  elements.zThis.dispatchEvent(new Event('change'));
  setTool('select');
  renderLog();

  return {
    get tool() { return tool; },
    /** Whether the page offers the tool `name` (the server lists the kinds it sends). */
    offers: (name) => offered.has(name),
    setTool,
    undo,
    redo,
    /** Send one correction made on the version on screen (ortho.js: a split drawn in XZ / YZ). */
    correct,
    mergeSelected,
    deleteSelected,
    checkSelected,
    refreshButtons,
    /** Enter: finish a polygon, or merge the picked nuclei. */
    enter() {
      if (TOOLS[tool].enter) TOOLS[tool].enter(draw, context);
      else mergeSelected();
    },
    /** Escape: drop the drawing in progress; true if there was one. */
    escape() {
      const drawing = seeds.length > 0 || sketchSource.getFeatures().length > 0 || Boolean(TOOLS[tool].escape?.(context));
      if (draw) draw.abortDrawing();
      seeds = [];
      sketchSource.clear();
      return drawing;
    },
    removeLastPoint() {
      return Boolean(TOOLS[tool].removeLastPoint?.(draw));
    },
    /** The z-range inputs follow the plane on screen. */
    followPlane(z) {
      if (elements.zThis.checked) {
        elements.zFrom.value = z;
        elements.zTo.value = z;
      }
    },
    done,
    undone,
  };
}
