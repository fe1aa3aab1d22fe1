/**
 * The controls beside the map: the plane slider, the contrast inputs and the overlay's
 * switches (labels, outlines, heat map, opacity). Each acts on the XY map and the XZ / YZ
 * views alike.
 */

const CONTRAST_DELAY_MS = 250; // typing a number: apply once it rests
const shown = (value) => String(Number(value.toPrecision(6)));

/** `viewer`: the parts (main.js); layers and ortho must exist, the others are read when used. */
export function makeControls(viewer) {
  const { state, volume, layers, ortho, elements } = viewer;
  const { plane, contrast, overlay } = elements;

  /** Show plane `z` (clamped to the stack) in every part that follows the plane. */
  function setZ(z) {
    const next = Math.max(0, Math.min(volume.shape[0] - 1, Math.round(z)));
    if (next === state.z && layers.showing().z === next) return;
    state.z = next;
    plane.slider.value = String(next);
    plane.value.textContent = String(next);
    elements.status.z.textContent = `z ${next} / ${volume.shape[0] - 1}`;
    layers.show({ z: next });
    viewer.editor?.followPlane(next);
    ortho.followZ(next);
    viewer.draw3d?.refresh();
    viewer.refreshGate();
    viewer.stateChanged();
    viewer.place.remember();
  }
  plane.slider.addEventListener('input', (event) => setZ(Number(event.target.value)));

  let contrastTimer = null;
  function applyContrast() {
    const lo = Number(contrast.lo.value);
    const hi = Number(contrast.hi.value);
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo >= hi) {
      contrast.lo.setCustomValidity('low must be below high');
      contrast.lo.reportValidity();
      return;
    }
    contrast.lo.setCustomValidity('');
    state.lo = lo;
    state.hi = hi;
    layers.show({ lo, hi });
    ortho.show({ lo, hi });
  }
  for (const input of [contrast.lo, contrast.hi]) {
    input.addEventListener('input', () => {
      clearTimeout(contrastTimer);
      contrastTimer = setTimeout(applyContrast, CONTRAST_DELAY_MS);
    });
  }
  contrast.reset.addEventListener('click', () => {
    contrast.lo.value = shown(volume.contrast_limits[0]);
    contrast.hi.value = shown(volume.contrast_limits[1]);
    applyContrast();
  });
  contrast.lo.value = shown(state.lo);
  contrast.hi.value = shown(state.hi);

  overlay.visible.addEventListener('change', (event) => {
    layers.setLabelsVisible(event.target.checked);
    ortho.setLabelsVisible(event.target.checked);
  });
  // Under the heat map the labels are drawn as outlines, so its colours read as they are.
  const outlines = () => {
    const outline = overlay.outline.checked || overlay.heat.checked;
    layers.setLabelStyle({ outline });
    ortho.setLabelStyle({ outline });
  };
  overlay.outline.addEventListener('change', outlines);
  overlay.heat.addEventListener('change', (event) => {
    layers.heatLayer.setVisible(event.target.checked);
    ortho.setHeatVisible(event.target.checked);
    outlines();
  });
  overlay.opacity.addEventListener('input', (event) => {
    layers.labelLayer.setOpacity(Number(event.target.value) / 100);
    ortho.setOpacity(Number(event.target.value) / 100);
    overlay.opacityValue.textContent = `${event.target.value} %`;
  });

  /** The heat map's note: some tiles of the version on screen have none. */
  function heatLoaded() {
    const failed = layers.loads.heat.errors > 0 && layers.heatLayer.getVisible();
    overlay.heatNote.textContent = failed ? 'no heat map for some tiles of this version' : '';
  }

  return {
    setZ,
    heatLoaded,
    /** The brush radius one pixel larger (+1) or smaller (-1), at least 1 (keys [ and ]). */
    stepBrush(step) {
      const input = elements.editor.radius;
      input.value = String(Math.max(1, Number(input.value) + step));
    },
  };
}
