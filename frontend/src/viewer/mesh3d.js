/**
 * A 3D look at the selected nucleus: its surface and those of the nuclei touching it (the
 * server's marching cubes, `GET .../nuclei/<id>/mesh/`, in micrometres), drawn with three.js
 * (scene3d.js, loaded the first time the view opens) and turned by dragging, z upwards as in
 * the stack. Beside it, the nucleus' area on each of its planes; the text says its z extent,
 * volume and uncertainty and which nuclei touch it.
 *
 * A z-merge (two nuclei stacked in z joined into one) is obvious at a glance: the shape has a
 * waist, the narrowest plane is a red ring on the mesh and a red bar in the profile, and the
 * panel says why in words (the server's `z_merge_signs`).
 *
 * The panel (#mesh-panel, key `d`) follows the selection while it is open; closed, it fetches
 * nothing. Its dataset mirrors the state for the tests: state (idle, loading, ready, error),
 * labelId, triangles, neighbours, waist, azimuth and polar (degrees).
 */

import { colourOf } from './labels.js';

const DEBOUNCE_MS = 120;

export function makeMeshView({ api, volumeId, elements, getVersion }) {
  const { panel, canvas, profile, info, signs } = elements;
  let scene = null; // scene3d.js's, once loaded
  let request = 0;
  let timer = null;
  let shownKey = null;
  let wanted = null;

  function setState(state, text = null) {
    panel.dataset.state = state;
    if (text !== null) info.textContent = text;
  }

  async function ensureScene() {
    if (scene) return scene;
    const { makeScene } = await import('./scene3d.js');
    scene = makeScene(canvas, {
      colourOf,
      onDraw: ({ azimuth, polar }) => {
        panel.dataset.azimuth = String(Math.round(azimuth));
        panel.dataset.polar = String(Math.round(polar));
      },
    });
    return scene;
  }

  function drawProfile(view) {
    const context = profile.getContext('2d');
    const { width, height } = profile;
    context.clearRect(0, 0, width, height);
    const planes = view.profile;
    if (planes.length === 0) return;
    const most = Math.max(...planes.map((p) => p.area_um2)) || 1;
    const bar = height / planes.length;
    planes.forEach((plane, k) => {
      const y = height - (k + 1) * bar; // the highest plane on top, as in the 3D view
      const length = (plane.area_um2 / most) * (width - 4);
      context.fillStyle = plane.z === view.waist_z ? '#ff4d4d' : `rgb(${colourOf(view.label_id).join(',')})`;
      context.fillRect((width - length) / 2, y + 0.5, length, Math.max(1, bar - 1));
    });
  }

  function describe(view) {
    const planes = view.z_max - view.z_min + 1;
    const parts = [
      `#${view.label_id}`,
      view.z_min === view.z_max ? `plane ${view.z_min}`
        : `z ${view.z_min}–${view.z_max} (${planes} planes, ${Number(view.z_extent_um.toPrecision(3))} µm)`,
      `${Number(view.volume_um3.toPrecision(4)).toLocaleString()} µm³`,
      `uncertainty ${view.uncertainty === null ? '—' : view.uncertainty.toFixed(3)}`,
    ];
    if (view.neighbours.length) parts.push(`touches #${view.neighbours.join(', #')}`);
    info.textContent = parts.join(' · ');
    signs.replaceChildren();
    signs.hidden = view.z_merge_signs.length === 0;
    if (view.z_merge_signs.length) {
      const title = document.createElement('strong');
      title.textContent = 'Looks like two nuclei joined in z: ';
      signs.append(title, `${view.z_merge_signs.join('; ')}. Split it across the waist (split tool).`);
    }
  }

  async function load(labelId, version) {
    const mine = ++request;
    setState('loading', `Loading the 3D view of #${labelId}…`);
    try {
      const [view, drawn] = await Promise.all([
        api.get(`volumes/${volumeId}/label-versions/${version}/nuclei/${labelId}/mesh/`), ensureScene()]);
      if (mine !== request) return;
      describe(view);
      drawn.show(view);
      drawProfile(view);
      shownKey = `${version}|${labelId}`;
      panel.dataset.labelId = String(view.label_id);
      panel.dataset.triangles = String(view.meshes.reduce((n, m) => n + m.n_triangles, 0));
      panel.dataset.neighbours = view.neighbours.join(',');
      panel.dataset.waist = view.waist_z === null ? '' : String(view.waist_z);
      setState('ready');
    } catch (error) {
      if (mine !== request) return;
      shownKey = null;
      setState('error', `No 3D view of #${labelId}: ${error.message ?? error}`);
    }
  }

  /** Show nucleus `labelId` of the version on screen (null: nothing), if the panel is open. */
  function follow(labelId) {
    wanted = labelId;
    clearTimeout(timer);
    if (!panel.open) return;
    const version = getVersion();
    if (labelId === null || version === null) {
      request += 1;
      shownKey = null;
      setState('idle', 'Select one nucleus to see it in 3D.');
      signs.hidden = true;
      return;
    }
    if (shownKey === `${version}|${labelId}` && panel.dataset.state === 'ready') return;
    timer = setTimeout(() => load(labelId, version), DEBOUNCE_MS);
  }

  panel.addEventListener('toggle', () => {
    if (panel.open) {
      shownKey = null;
      follow(wanted);
    }
  });
  window.addEventListener('resize', () => scene?.resize());
  setState('idle', 'Select one nucleus to see it in 3D.');

  return {
    follow,
    toggle() {
      panel.open = !panel.open;
    },
    /** Turn the view by `degrees` about the vertical axis (the tests use it; people drag). */
    turn(degrees) {
      scene?.turn(degrees);
    },
    get open() { return panel.open; },
  };
}
