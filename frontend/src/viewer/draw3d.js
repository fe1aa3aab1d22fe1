/**
 * Drawing across planes: tools that edits.js runs like its own (they register in TOOLS, defined
 * like edits.js's: the page offers them when the server's kinds take their drawing).
 *
 * - interpolate (`i`): outline the nucleus on two or more planes (Enter or a click on the first
 *   point closes each outline; step planes with `,` `.` between them), then Enter or "Apply":
 *   one `add` (or, with "grow the selected nucleus", one `modify`) whose planes between the
 *   outlines are interpolated on the server (segmentation/core/drawing3d.py), not the same
 *   outline stacked.
 * - ball brush (`k`) and ball eraser (`j`): a stroke swept by a ball of a radius in µm, through
 *   every plane the ball reaches (on a stack of 2 µm planes, a 3 µm ball reaches one plane up
 *   and one down). The brush grows the selected nucleus (or the one under the stroke's start),
 *   or adds a new one on background; the eraser erases from it.
 * - fill (`f`): click on background that nuclei enclose: it becomes a new nucleus, or part of
 *   the selected nucleus, on the planes of "This plane only" / from–to. Refused (with the
 *   reason) when the background there is not enclosed within FILL_REACH pixels.
 *
 * Each is one correction record and one label version, like every edit.
 */

import Draw from 'ol/interaction/Draw.js';
import Feature from 'ol/Feature.js';
import Polygon from 'ol/geom/Polygon.js';
import VectorLayer from 'ol/layer/Vector.js';
import VectorSource from 'ol/source/Vector.js';
import Style from 'ol/style/Style.js';
import Stroke from 'ol/style/Stroke.js';
import Fill from 'ol/style/Fill.js';
import CircleStyle from 'ol/style/Circle.js';

import { TOOLS } from './edits.js';
import { toYX } from './grid.js';

/** How far (pixels) a fill may reach from the click, at most (EZQUANT_EDIT_MAX_RADIUS is 100). */
export const FILL_REACH = 64;

const round = (v) => Math.round(v * 100) / 100;
const points = (coordinates) => coordinates.map((c) => toYX(c).map(round));

const outlineStyle = new Style({
  stroke: new Stroke({ color: '#5ce1e6', width: 2 }),
  fill: new Fill({ color: 'rgba(92, 225, 230, 0.12)' }),
  image: new CircleStyle({ radius: 4, fill: new Fill({ color: '#5ce1e6' }) }),
});
const otherPlaneStyle = new Style({ stroke: new Stroke({ color: 'rgba(92, 225, 230, 0.55)', width: 1, lineDash: [4, 4] }) });

function ballStyle(pixels, erase) {
  const colour = erase ? 'rgba(255, 80, 80, 0.5)' : 'rgba(92, 225, 230, 0.5)';
  return (feature, resolution) => new Style({
    stroke: new Stroke({ color: colour, width: Math.max(1, (2 * pixels()) / resolution), lineCap: 'round', lineJoin: 'round' }),
    image: new CircleStyle({ radius: Math.max(2, pixels() / resolution), fill: new Fill({ color: colour }) }),
  });
}

export function makeDraw3d({ viewer, volume, elements }) {
  const sections = new Map(); // z -> [[y, x], ...]
  const source = new VectorSource({ wrapX: false });
  const layer = new VectorLayer({ source, zIndex: 5 });
  viewer.layers.map.addLayer(layer);
  let drawing = false;
  let context = null; // the editor's, kept from the tool's first use (the Apply button needs it)
  const [, vy, vx] = volume.voxel_size;

  const radiusUm = () => Math.max(0.05, Number(elements.ballRadius.value) || 2);
  const ballPixels = () => radiusUm() / Math.min(vy, vx);

  function renderSections() {
    source.clear();
    const z = viewer.state.z;
    for (const [plane, outline] of sections) {
      const ring = outline.map(([y, x]) => [x, -y]);
      const feature = new Feature(new Polygon([[...ring, ring[0]]]));
      feature.setStyle(plane === z ? outlineStyle : otherPlaneStyle);
      source.addFeature(feature);
    }
    const planes = [...sections.keys()].sort((a, b) => a - b);
    elements.sections.textContent = planes.length === 0 ? 'No outline yet: draw one on this plane.'
      : `Outlines on plane${planes.length > 1 ? 's' : ''} ${planes.join(', ')}`
        + (planes.length < 2 ? ': draw another on a second plane.' : '.');
    elements.sections.dataset.planes = planes.join(',');
    elements.apply.disabled = planes.length < 2 || viewer.state.busy || Boolean(viewer.state.locked);
    elements.clear.disabled = planes.length === 0;
  }

  function targetId(coordinate) {
    const selected = viewer.state.selection;
    if (selected.length === 1) return selected[0];
    return coordinate ? viewer.idAt(...toYX(coordinate)) || null : null;
  }

  async function applySections(editorContext) {
    if (sections.size < 2) {
      viewer.banner.show('Outline the nucleus on at least two planes first.', { kind: 'info' });
      return;
    }
    const list = [...sections.entries()].sort((a, b) => a[0] - b[0]).map(([z, polygon]) => ({ z, polygon }));
    const grow = elements.onto.checked && viewer.state.selection.length === 1;
    const id = grow ? viewer.state.selection[0] : null;
    const body = grow ? { type: 'modify', nucleus_ids: [id] } : { type: 'add', nucleus_ids: [] };
    const record = await editorContext.correct({ ...body, z: list[0].z, sections: list }, grow ? () => [id] : undefined);
    if (record) {
      sections.clear();
      renderSections();
    }
  }

  Object.assign(TOOLS, {
    interpolate: {
      label: 'interpolate: outline on two or more planes, then Enter',
      key: 'i',
      text: 'Interpolate',
      title: 'Outline a nucleus on two or more planes; the planes between are interpolated',
      sends: ['add', 'modify'],
      drawing: 'sections',
      makeDraw(common, editorContext) {
        context = editorContext;
        const draw = new Draw({ ...common, type: 'Polygon', style: outlineStyle });
        draw.on('drawstart', () => { drawing = true; });
        draw.on('drawabort', () => { drawing = false; });
        return draw;
      },
      onDrawEnd(geometry) {
        drawing = false;
        const ring = geometry.getCoordinates()[0];
        if (ring.length < 4) return;
        sections.set(viewer.state.z, points(ring.slice(0, -1)));
        renderSections();
      },
      enter(draw, editorContext) {
        if (drawing && draw) draw.finishDrawing();
        else applySections(editorContext);
      },
      escape() {
        if (drawing || sections.size === 0) return false;
        sections.clear();
        renderSections();
        return true;
      },
    },
    fill: {
      label: 'fill: click enclosed background (a new nucleus, or the selected one grows)',
      key: 'f',
      text: 'Fill',
      title: 'Fill background that nuclei enclose: a new nucleus, or the selected one grows',
      sends: ['add', 'modify'],
      drawing: 'fill',
      makeDraw: (common) => new Draw({ ...common, type: 'Point', style: outlineStyle }),
      onDrawEnd(geometry, context) {
        setTimeout(() => context.sketchSource.clear(), 0); // the point is added after drawend
        const [y, x] = toYX(geometry.getCoordinates()).map(round);
        const selected = viewer.state.selection;
        const fill = { point: [y, x], radius: FILL_REACH };
        const zRange = context.zRange();
        if (selected.length === 1) {
          context.correct({ type: 'modify', nucleus_ids: [selected[0]], fill, z_range: zRange }, () => [selected[0]]);
        } else {
          context.correct({ type: 'add', nucleus_ids: [], fill, z_range: zRange });
        }
      },
    },
    'ball-brush': {
      label: 'ball brush: a ball of the radius in µm, through the planes it reaches',
      key: 'k',
      text: 'Ball brush',
      title: 'A ball of the radius in µm through the planes it reaches: grows the selected nucleus, or adds one',
      sends: ['add', 'modify'],
      drawing: 'stroke',
      makeDraw: (common) => new Draw({ ...common, type: 'LineString', freehand: true, style: ballStyle(ballPixels, false) }),
      onDrawEnd(geometry, context) {
        const coordinates = geometry.getCoordinates();
        const stroke = { points: points(coordinates), radius_um: radiusUm() };
        const id = targetId(coordinates[0]);
        if (id === null) context.correct({ type: 'add', nucleus_ids: [], stroke });
        else context.correct({ type: 'modify', nucleus_ids: [id], stroke }, () => [id]);
      },
    },
    'ball-erase': {
      label: 'ball eraser: erase a ball of the radius in µm from the selected nucleus',
      key: 'j',
      text: 'Ball eraser',
      title: 'Erase a ball of the radius in µm from the selected nucleus',
      sends: ['modify'],
      drawing: 'stroke',
      makeDraw: (common) => new Draw({ ...common, type: 'LineString', freehand: true, style: ballStyle(ballPixels, true) }),
      onDrawEnd(geometry, context) {
        const coordinates = geometry.getCoordinates();
        const id = targetId(coordinates[0]);
        if (id === null) {
          viewer.banner.show('Select the nucleus to erase from first (select tool, click it).', { kind: 'error' });
          return;
        }
        context.correct({ type: 'modify', nucleus_ids: [id],
          stroke: { points: points(coordinates), radius_um: radiusUm(), erase: true } }, () => [id]);
      },
    },
  });

  elements.apply.addEventListener('click', () => { if (context) applySections(context); });
  elements.clear.addEventListener('click', () => {
    sections.clear();
    renderSections();
  });
  renderSections();

  return {
    /** The plane on screen changed, or the busy or locked state: outlines and the buttons follow. */
    refresh: renderSections,
    sections,
    apply: applySections,
  };
}
