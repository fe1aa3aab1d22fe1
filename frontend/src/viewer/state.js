/**
 * What the viewer shows, in one object that every part reads (and the browser tests through
 * `window.ezqViewer.state`, hooks.js): the plane, the contrast, the label version on screen and
 * the ones known, the selected nuclei, whether an edit is in flight and why editing is off.
 * The parts that change it are named beside each field.
 */

export function makeState(config) {
  const { volume } = config;
  return {
    z: Math.floor(volume.shape[0] / 2), // controls.js setZ
    lo: volume.contrast_limits[0], // controls.js: the contrast inputs
    hi: volume.contrast_limits[1],
    version: config.head, // versions.js setVersion; null: no labels yet
    versions: [...config.label_versions], // every version known, oldest first (addVersion)
    selection: [], // selection.js select: nucleus ids
    busy: false, // main.js setBusy: an edit is in flight
    locked: '', // why the edit tools are off here ('' when they are on): region.js via main.js
  };
}

/** Add version `name` to the known ones, kept in order (v2 before v10); false if known. */
export function addVersion(state, name) {
  if (!name || state.versions.includes(name)) return false;
  state.versions.push(name);
  state.versions.sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
  return true;
}

/** The newest version known, or undefined when there is none. */
export function latestVersion(state) {
  return state.versions[state.versions.length - 1];
}
