/**
 * The label version on screen: the version menu and badge, showing a version in every view
 * (the XY map, the XZ / YZ views, the nuclei queue), and Reload after a conflict.
 */

import { resultsOf } from '../shared/api.js';
import { addVersion, latestVersion } from './state.js';

/**
 * `viewer`: the parts (main.js); this reads state, layers, ortho, nuclei, live, hooks, banner
 * and select from it when a version is shown, so it may be made before them.
 */
export function makeVersions(viewer) {
  const { state, api, volume } = viewer;
  const elements = viewer.elements.versions;

  function render() {
    const { select } = elements;
    select.replaceChildren();
    if (state.versions.length === 0) {
      const option = document.createElement('option');
      option.textContent = 'none yet';
      option.value = '';
      select.append(option);
    }
    const latest = latestVersion(state);
    for (const name of state.versions) {
      const option = document.createElement('option');
      option.value = name;
      option.textContent = name === latest ? `${name} (latest)` : name;
      select.append(option);
    }
    select.value = state.version ?? '';
    select.disabled = state.versions.length === 0;
    const old = state.version !== null && state.version !== latest;
    elements.head.textContent = state.version ? `labels ${state.version}${old ? ' · not the latest' : ''}` : 'no labels';
    elements.head.classList.toggle('old', old);
    elements.head.title = old ? `an older version: edits are made on the latest (${latest})` : 'the label version shown';
  }

  /**
   * Show label version `version`. After an edit, `edit` ({from, bbox}) lets the overlay keep
   * the tiles of `from` that the edit did not touch; `editSent` and `answered` time it
   * (hooks.js). Resolves when every view has drawn the overlay.
   */
  async function show(version, { selection = [], editSent = null, answered = null, edit = null } = {}) {
    const { layers, ortho, hooks } = viewer;
    addVersion(state, version);
    state.version = version;
    state.selection = selection;
    render();
    viewer.live?.shown();
    layers.show({ version, edit });
    layers.setLabelStyle({ selected: selection });
    ortho.show({ version });
    ortho.setLabelStyle({ selected: selection });
    viewer.stateChanged();
    // In three views the overlay is drawn when all three are.
    const overlay = Promise.all([hooks.nextFullRender(), ortho.nextFullRender()]).then((times) => {
      hooks.overlayDrawn({ version, at: Math.max(...times), editSent, answered });
    });
    try {
      await viewer.nuclei.load(version, selection);
    } catch (error) {
      viewer.banner.apiError(error, 'The nuclei could not be loaded');
    }
    viewer.select(selection, { quiet: true });
    return overlay;
  }

  /** The volume's versions read again, the latest shown (the banner's Reload). */
  async function reload() {
    viewer.banner.hide();
    try {
      const detail = await api.get(`volumes/${volume.id}/`);
      const versions = resultsOf(await api.get(`volumes/${volume.id}/label-versions/`)).map((v) => v.name);
      state.versions = versions;
      const latest = detail.latest_label_version ?? versions[versions.length - 1] ?? null;
      await show(latest);
      viewer.banner.show(`Reloaded: now showing ${latest ?? 'no labels'}.`, { kind: 'info' });
    } catch (error) {
      viewer.banner.apiError(error, 'Could not reload');
    }
  }

  /** A version made elsewhere (live.js): listed at once, shown when asked. */
  function add(name) {
    if (addVersion(state, name)) render();
  }

  elements.select.addEventListener('change', (event) => show(event.target.value || null));
  return { render, show, reload, add };
}
