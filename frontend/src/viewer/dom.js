/**
 * The viewer page's elements (frontend/templates/frontend/viewer.html), found once and
 * grouped by the part of the viewer that uses them: the one place that names the template's
 * ids. A part is given its group; none looks elements up by id itself.
 */

export const $ = (id) => document.getElementById(id);

export function findElements() {
  return {
    config: $('viewer-config'), // the page's config as JSON (frontend/views.py `viewer_config`)
    root: $('viewer'),
    map: $('map'),
    banner: { box: $('banner'), text: $('banner-text'), reload: $('banner-reload'), close: $('banner-close') },
    status: { busy: $('status-busy'), z: $('status-z'), pos: $('status-pos'), id: $('status-id') },
    plane: { slider: $('z-slider'), value: $('z-value') },
    contrast: { lo: $('contrast-lo'), hi: $('contrast-hi'), reset: $('contrast-reset') },
    overlay: {
      visible: $('labels-visible'), outline: $('labels-outline'), heat: $('heatmap-visible'),
      heatNote: $('heatmap-note'), opacity: $('labels-opacity'), opacityValue: $('opacity-value'),
    },
    versions: { select: $('version-select'), head: $('head-version') },
    selectionText: $('selection-text'),
    ortho: { views: $('views'), xz: $('map-xz'), yz: $('map-yz'), toggle: $('layout-toggle'),
      statusPos: $('status-pos'), statusId: $('status-id') },
    region: { note: $('region-note') },
    nuclei: { list: $('nuclei-list'), count: $('nuclei-count'), next: $('next-uncertain'), strategy: $('queue-strategy') },
    mesh: { panel: $('mesh-panel'), canvas: $('mesh-canvas'), profile: $('mesh-profile'), info: $('mesh-info'),
      signs: $('mesh-signs') },
    jobs: {
      form: $('job-form'), model: $('job-model'), diameter: $('job-diameter'), backend: $('job-backend'),
      restoration: $('job-restoration'), vz: $('job-vz'), vy: $('job-vy'), vx: $('job-vx'),
      start: $('job-start'), cancel: $('job-cancel'), status: $('job-status'), progress: $('job-progress'),
      text: $('job-text'), curation: $('job-curation'), curationText: $('job-curation-text'),
      fromScratch: $('job-from-scratch'),
    },
    live: { notice: $('live-notice'), text: $('live-notice-text'), show: $('live-show'), presence: $('presence') },
    draw3d: { ballRadius: $('ball-radius'), sections: $('sections-text'), apply: $('sections-apply'),
      clear: $('sections-clear'), onto: $('sections-onto') },
    editor: {
      toolbox: document.querySelector('.tools'), radius: $('brush-radius'), // edits.js makes the tools' buttons
      zThis: $('zrange-this'), zFrom: $('zrange-from'), zTo: $('zrange-to'), zInputs: $('zrange-inputs'),
      undo: $('undo'), redo: $('redo'), mergeApply: $('merge-apply'), deleteApply: $('delete-apply'),
      checkApply: $('check-apply'),
      log: $('edit-log'), status: $('status-tool'),
    },
    help: { box: $('help'), open: $('help-open') },
  };
}
