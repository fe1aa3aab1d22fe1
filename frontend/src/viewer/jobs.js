/**
 * The segmentation panel: its parameters, Start and Cancel, and the live state of the
 * volume's newest job from the WebSocket (each message is a job's whole state: first the
 * persisted ones, then every change). When a job that was queued or running while the page was
 * open succeeds, `onSucceeded` gets its label version.
 *
 * Before a job starts on a volume where people made, changed or checked nuclei, or that has
 * open assignments, the panel says so (`volumes/{id}/curation/`): a new segmentation keeps
 * those nuclei, unless "start from scratch" is ticked; a second Start sends it.
 */

import { keepSocket } from '../shared/socket.js';

const ACTIVE = new Set(['queued', 'running']);

export function makeJobPanel({ api, config, elements, onSucceeded, onError }) {
  const volume = config.volume;
  const jobs = new Map(); // id -> last state
  const watched = new Set(); // ids seen queued or running here
  let socket = null;
  let pollTimer = null;
  let starting = false; // a Start sent and not answered yet
  let warned = false; // the curation notice was shown for the Start to come

  const [vz, vy, vx] = volume.voxel_size;
  elements.vz.value = vz;
  elements.vy.value = vy;
  elements.vx.value = vx;
  if (volume.shape[0] === 1) elements.vz.disabled = true;

  function newest() {
    let best = null;
    for (const job of jobs.values()) if (best === null || job.id > best.id) best = job;
    return best;
  }

  /** Start is off while a job is queued or running (one at a time) or being started. */
  function renderStart(job) {
    const active = job !== null && ACTIVE.has(job.status);
    elements.start.disabled = starting || active;
    elements.start.title = active ? `Job ${job.id} is ${job.status}: wait for it, or cancel it` : '';
  }

  function render() {
    const job = newest();
    const status = elements.status;
    renderStart(job);
    if (job === null) {
      status.dataset.status = 'none';
      elements.progress.value = 0;
      elements.text.textContent = 'No job yet.';
      elements.cancel.disabled = true;
      return;
    }
    status.dataset.status = job.status;
    status.dataset.jobId = String(job.id);
    elements.progress.value = job.status === 'succeeded' ? 1 : job.progress;
    const percent = `${Math.round(100 * (job.status === 'succeeded' ? 1 : job.progress))} %`;
    const parts = [`Job ${job.id}: ${job.status}`];
    if (ACTIVE.has(job.status)) parts.push(percent);
    if (job.message && job.status !== 'succeeded') parts.push(job.message);
    if (job.status === 'succeeded' && job.label_version) parts.push(`labels ${job.label_version}`);
    if (job.error) parts.push(job.error);
    elements.text.textContent = parts.join(' · ');
    elements.text.classList.toggle('error', job.status === 'failed');
    elements.cancel.disabled = !ACTIVE.has(job.status);
  }

  function update(state) {
    if (state.type !== undefined && state.type !== 'job') return;
    if (state.volume !== undefined && state.volume !== null && state.volume !== volume.id) return;
    const before = jobs.get(state.id);
    jobs.set(state.id, state);
    if (ACTIVE.has(state.status)) watched.add(state.id);
    const finishedHere = watched.has(state.id) && state.status === 'succeeded'
      && (before === undefined || before.status !== 'succeeded');
    render();
    if (finishedHere && state.label_version) {
      watched.delete(state.id);
      onSucceeded(state);
    }
    if (watched.has(state.id) && !ACTIVE.has(state.status)) watched.delete(state.id);
  }

  function connect() {
    socket = keepSocket({
      path: config.websocket,
      what: 'job',
      onMessage: update,
      onOpen: () => { elements.status.dataset.socket = 'open'; },
      onClose: () => { elements.status.dataset.socket = 'closed'; },
      onRefused: () => onError('The job updates were refused: sign in again.'),
    });
  }

  /** While the socket is down, read active jobs over HTTP instead. */
  function poll() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(async () => {
      const active = [...jobs.values()].filter((job) => ACTIVE.has(job.status));
      if (!socket.open) {
        for (const job of active) {
          try {
            update({ ...(await api.get(`segmentation-jobs/${job.id}/`)), type: 'job' });
          } catch (error) {
            console.warn('job poll failed', error);
          }
        }
      }
      if ([...jobs.values()].some((job) => ACTIVE.has(job.status))) poll();
    }, 3000);
  }

  const backendOptions = (name) => elements.form.querySelector(`.backend-options[data-backend="${name}"]`);
  elements.backend?.addEventListener('change', () => {
    for (const box of elements.form.querySelectorAll('.backend-options')) box.hidden = box.dataset.backend !== elements.backend.value;
  });

  function params() {
    const out = {};
    // Cellpose's thresholds and the smallest mask kept: the form's named fields, left out when empty.
    for (const name of ['flow_threshold', 'cellprob_threshold', 'min_size']) {
      const field = elements.form.elements.namedItem(name);
      if (field && field.value.trim() !== '') out[name] = Number(field.value);
    }
    const model = elements.model.value.trim();
    if (model) out.model_name = model;
    const diameter = elements.diameter.value.trim();
    if (diameter) out.diameter = Number(diameter);
    if (volume.shape[0] > 1) {
      const backend = elements.backend ? elements.backend.value : 'hybrid2d3d';
      out.do_3d = backend !== 'slice';
      out.use_3d_backend = backend;
      // The chosen backend's own options (segmentation.core.backend_options declares them, the
      // template lists them): a check box as true or false, a number left out when empty.
      for (const field of backendOptions(backend)?.querySelectorAll('[name]') ?? []) {
        if (field.dataset.kind === 'bool') {
          out[field.name] = field.checked;
          continue;
        }
        if (field.value.trim() === '') continue;
        out[field.name] = field.dataset.kind === 'choice' ? field.value : Number(field.value);
      }
    }
    // Empty: the server's default for this image (segmentation.core.params.params_for_stack).
    if (elements.restoration.value) out.restoration_mode = elements.restoration.value;
    const size = volume.shape[0] > 1
      ? [elements.vz.value, elements.vy.value, elements.vx.value]
      : [elements.vy.value, elements.vx.value];
    if (size.every((v) => String(v).trim() !== '')) out.voxel_size = size.map(Number);
    return out;
  }

  /** Whether people's work is at stake (and the notice now says what happens to it). */
  async function curationAtStake() {
    const c = await api.get(`volumes/${volume.id}/curation/`);
    const people = c.edited + c.checked + c.deleted;
    if (people === 0 && c.open_assignments === 0 && c.pending_corrections === 0) return false;
    const nuclei = (n) => `${n} nucle${n === 1 ? 'us' : 'i'}`;
    const parts = [];
    if (c.checked) parts.push(`${nuclei(c.checked)} people checked`);
    if (c.edited) parts.push(`${nuclei(c.edited)} ${parts.length ? 'they' : 'people'} made or changed`);
    if (c.deleted) parts.push(`${c.deleted} deletion${c.deleted === 1 ? '' : 's'} (those places stay empty)`);
    const open = (c.open_assignments
      ? ` ${c.open_assignments} assignment${c.open_assignments === 1 ? ' is' : 's are'} still open on this volume.` : '')
      + (c.pending_corrections ? ` ${c.pending_corrections} correction${c.pending_corrections === 1 ? ' waits' : 's wait'}`
        + ' for review.' : '');
    elements.curationText.textContent = (people
      ? `${c.label_version} has ${parts.join(' and ')}: the new segmentation keeps them exactly and the model `
        + 'fills in the rest.' : 'Nobody has corrected these labels yet.') + open
      + ' Press Start again to go ahead.';
    elements.curation.hidden = false;
    return true;
  }

  elements.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (starting || elements.start.disabled) return;
    starting = true;
    renderStart(newest());
    try {
      if (!warned && await curationAtStake()) {
        warned = true;
        return;
      }
      const job = await api.post(`volumes/${volume.id}/segmentation-jobs/`, {
        params: params(), from_scratch: elements.fromScratch.checked,
      });
      warned = false;
      elements.curation.hidden = true;
      elements.fromScratch.checked = false;
      update({ ...job, type: 'job' });
      poll();
    } catch (error) {
      onError(`The job was not started: ${error.message}`);
    } finally {
      starting = false;
      render();
    }
  });

  elements.cancel.addEventListener('click', async () => {
    const job = newest();
    if (job === null) return;
    elements.cancel.disabled = true;
    try {
      update({ ...(await api.post(`segmentation-jobs/${job.id}/cancel/`)), type: 'job' });
    } catch (error) {
      onError(`The job was not cancelled: ${error.message}`);
      render();
    }
  });

  connect();
  render();
  return {
    stop: () => socket.stop(),
    jobs,
  };
}
