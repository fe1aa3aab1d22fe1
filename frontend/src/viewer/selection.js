/**
 * The selected nuclei: picking them on the map (a click with the select or merge tool), the
 * hovered nucleus in the status bar, the selection's text, and jumping to a nucleus from the
 * queue (or `n`, the next uncertain one).
 */

import { inside, toCoordinate, toYX } from './grid.js';

/**
 * `viewer`: the parts (main.js); layers, ortho and map must exist, the others (nuclei, mesh,
 * editor, controls) are read when used.
 */
export function makeSelection(viewer) {
  const { state, grid, layers, ortho, elements, hooks } = viewer;
  const { map, view } = layers;

  function select(ids, { quiet = false } = {}) {
    state.selection = [...new Set(ids.filter((id) => id > 0))];
    layers.setLabelStyle({ selected: state.selection });
    ortho.setLabelStyle({ selected: state.selection });
    viewer.nuclei.highlight(state.selection);
    const text = elements.selectionText;
    if (state.selection.length === 0) {
      text.textContent = 'Nothing selected.';
    } else if (state.selection.length === 1) {
      const n = viewer.nuclei.get(state.selection[0]);
      text.textContent = n
        ? `#${n.label_id}: z ${n.z_min}–${n.z_max}, ${n.volume_voxels.toLocaleString()} voxels, uncertainty `
          + `${n.uncertainty === null ? '—' : n.uncertainty.toFixed(3)}`
          + ({ checked: ' · checked ✓', edited: ' · edited by a person' }[n.curation] ?? '')
        : `#${state.selection[0]}`;
    } else {
      text.textContent = `${state.selection.length} nuclei: #${state.selection.join(', #')}`;
    }
    viewer.editor?.refreshButtons();
    viewer.mesh.follow(state.selection.length === 1 ? state.selection[0] : null);
    viewer.stateChanged();
    if (!quiet) map.render();
  }

  /** Go to a nucleus (a row of the queue): its centre plane, zoomed in, selected. */
  function jumpTo(nucleus) {
    viewer.controls.setZ(nucleus.centroid_z);
    const planes = nucleus.z_max - nucleus.z_min + 1;
    const diameter = 2 * Math.sqrt(nucleus.volume_voxels / planes / Math.PI);
    const [w, h] = map.getSize() ?? [800, 600];
    // As close as the view allows (minResolution, 16x): a small nucleus fills a fifth of the map.
    const resolution = Math.max(view.getMinResolution(), Math.min((diameter * 5) / Math.min(w, h), 2 ** (grid.levels - 1)));
    view.animate({ center: toCoordinate(nucleus.centroid_y, nucleus.centroid_x), resolution, duration: 250 });
    select([nucleus.label_id]);
    ortho.centreOn(nucleus);
  }

  function nextUncertain() {
    const next = viewer.nuclei.next(state.selection[0]);
    if (next) jumpTo(next);
  }

  // The nucleus under the pointer, in the status bar, once a frame at most.
  let hoverFrame = null;
  map.on('pointermove', (event) => {
    if (event.dragging) return;
    const coordinate = event.coordinate;
    if (hoverFrame !== null) return;
    hoverFrame = requestAnimationFrame(() => {
      hoverFrame = null;
      const [y, x] = toYX(coordinate);
      if (!inside(grid, [y, x])) {
        elements.status.pos.textContent = '—';
        elements.status.id.textContent = 'nucleus —';
        hooks.hovered(null);
        return;
      }
      elements.status.pos.textContent = `y ${Math.floor(y)} · x ${Math.floor(x)}`;
      const id = layers.idAt(y, x);
      elements.status.id.textContent = id === null ? 'nucleus ?' : (id === 0 ? 'background' : `nucleus #${id}`);
      hooks.hovered(id);
      map.getTargetElement().classList.toggle('over-nucleus', Boolean(id));
    });
  });

  map.on('singleclick', (event) => {
    const tool = viewer.editor.tool;
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

  return { select, jumpTo, nextUncertain };
}
