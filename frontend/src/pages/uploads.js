/**
 * Uploads from the project page (frontend/templates/frontend/project.html): a volume (TIFF,
 * OME-TIFF or a zipped OME-Zarr folder, by drag and drop or the file picker) and a volume's
 * labels.
 *
 * A <form class="upload-form" data-api="/api/v1/..."> is sent as multipart form data by
 * XMLHttpRequest, whose upload events fill the [data-bar="upload"] bar. A volume upload is
 * answered 202 with an import job (annotation.services.imports): the page then follows the
 * job on its socket (data-socket, its id in place of 0; reading data-job while the socket is
 * down) until it ends, and the [data-bar="import"] bar shows the worker's progress (plane k of n). The end is a link to the new volume's viewer; a
 * failure is one message, which names the user's file (the server's messages do; an answer
 * that does not is prefixed with it). A label upload (data-parent: the version it derives
 * from) is answered 201 with the new version, and the page reloads to list it.
 *
 * "Latest imports" ([data-import-job] rows the server rendered) are followed the same way while
 * they are queued or running: a reload in the middle of a long import loses nothing.
 *
 * Bundled by esbuild into static/frontend/dist/uploads.js (`make frontend`).
 */

import { csrfToken, jsonOrNull, makeApi } from '../shared/api.js';
import { socketUrl } from '../shared/socket.js';

const api = makeApi(); // whole paths, the token from <meta name="csrf-token">
const POLL_MS = 400;

const megabytes = (n) => (n < 1e5 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`);
const percent = (f) => `${Math.floor(100 * f)} %`;

function part(form, selector) {
  return form.querySelector(selector);
}

function setBar(form, which, fraction, text) {
  const bar = part(form, `[data-bar="${which}"]`);
  if (bar) {
    bar.hidden = false;
    bar.value = Math.max(0, Math.min(1, fraction));
  }
  const status = part(form, `[data-status="${which}"]`) ?? (which === 'upload' ? part(form, '[data-status]') : null);
  if (status && text !== undefined) status.textContent = text;
}

function showError(form, text) {
  const error = part(form, '[data-error]');
  error.textContent = text;
  error.hidden = false;
  form.dataset.state = 'failed';
}

/** The server's error as one sentence naming the file. */
function messageOf(status, data, fileName) {
  let text = data?.message ?? data?.detail ?? `the server answered ${status}`;
  const fields = data?.extra?.fields;
  if (fields && typeof fields === 'object') {
    const details = Object.entries(fields).map(([k, v]) => `${k}: ${[].concat(v).join(' ')}`);
    if (details.length) text = `${text} — ${details.join('; ')}`;
  }
  return text.includes(fileName) ? text : `${fileName}: ${text}`;
}

/** Read a form's fields into FormData (voxel size: z, y, x → one list; 2D: y, x). */
function formData(form, file) {
  const data = new FormData();
  data.append('file', file, file.name);
  const value = (name) => form.elements[name]?.value.trim() ?? '';
  if (value('name')) data.append('name', value('name'));
  if (value('channel')) data.append('channel', value('channel'));
  if (form.dataset.parent) data.append('parent', form.dataset.parent);
  const [z, y, x] = ['voxel_z', 'voxel_y', 'voxel_x'].map(value);
  if (y || x || z) {
    if (!y || !x) throw new Error('Give the voxel size in y and x (and z for a stack), or leave it all empty.');
    for (const v of z ? [z, y, x] : [y, x]) data.append('voxel_size', v);
  }
  return data;
}

function send(url, data, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('X-CSRFToken', csrfToken());
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    // An HTML error page (a proxy's 413) is no JSON: the status says enough.
    xhr.addEventListener('load', () => resolve({ status: xhr.status, body: jsonOrNull(xhr.responseText) }));
    xhr.addEventListener('error', () => reject(new Error('the server could not be reached')));
    xhr.addEventListener('abort', () => reject(new Error('the upload was stopped')));
    xhr.send(data);
  });
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

const ACTIVE = ['queued', 'running'];

/**
 * The states of import job `id` until it ends, each given to `onState`; resolves with the last.
 * They come from its socket (ws/import-jobs/<id>/: every progress report the worker makes, at
 * most five a second); while the socket is down, from reading the job every POLL_MS.
 */
function watch(form, id, onState) {
  const url = form.dataset.job.replace(/\/0\/$/, `/${id}/`);
  return new Promise((resolve, reject) => {
    let done = false;
    let socket = null;
    let polling = false;
    const take = (state) => {
      if (done) return;
      onState(state);
      if (!ACTIVE.includes(state.status)) {
        done = true;
        socket?.close();
        resolve(state);
      }
    };
    const poll = async () => {
      if (polling || done) return;
      polling = true;
      let failures = 0;
      while (!done) {
        await sleep(POLL_MS);
        try {
          take(await api.get(url));
          failures = 0;
        } catch (error) {
          failures += 1; // a dropped connection: keep asking a while, the job goes on without us
          if (failures > 25) {
            done = true;
            reject(error);
          }
        }
      }
    };
    try {
      socket = new WebSocket(socketUrl(form.dataset.socket.replace(/\/0\/$/, `/${id}/`)));
      socket.addEventListener('message', (event) => {
        try {
          take(JSON.parse(event.data));
        } catch (error) {
          console.error('bad import message', error);
        }
      });
      socket.addEventListener('close', () => poll());
    } catch {
      poll();
    }
  });
}

/** Follow an import job until it ends, on the import bar; the final state. */
async function follow(form, job) {
  const cancel = part(form, '[data-cancel]');
  form.dataset.importJob = String(job.id);
  if (cancel) {
    cancel.hidden = false;
    cancel.disabled = false;
    cancel.onclick = async () => {
      cancel.disabled = true;
      try {
        await api.post(form.dataset.cancelApi.replace(/\/0\/$/, `/${job.id}/cancel/`));
      } catch (error) {
        console.warn('the import was not cancelled', error); // the job's own states say how it ends
      }
    };
  }
  const show = (state) => {
    if (!ACTIVE.includes(state.status)) return;
    const text = state.status === 'queued' ? 'waiting for a worker…'
      : `${percent(state.progress)}${state.message ? ` · ${state.message}` : ''}`;
    setBar(form, 'import', state.progress, text);
  };
  show(job);
  try {
    return await watch(form, job.id, show);
  } finally {
    if (cancel) cancel.hidden = true;
  }
}

async function uploadVolume(form, file, data) {
  const answer = await send(form.dataset.api, data, (loaded, total) => {
    setBar(form, 'upload', loaded / total, `${percent(loaded / total)} of ${megabytes(total)}`);
  });
  if (answer.status !== 202) throw new Error(messageOf(answer.status, answer.body, file.name));
  setBar(form, 'upload', 1, `done: ${megabytes(file.size)}`);
  const end = await follow(form, answer.body);
  if (end.status === 'succeeded') {
    setBar(form, 'import', 1, 'done');
    const done = part(form, '[data-done]');
    const link = document.createElement('a');
    link.href = form.dataset.viewer.replace(/\/0\/$/, `/${end.volume}/`);
    link.textContent = `Open ${end.volume_name} in the viewer`;
    done.replaceChildren(`${file.name} is imported. `, link);
    done.hidden = false;
    form.dataset.state = 'done';
    form.dataset.volume = String(end.volume);
  } else if (end.status === 'cancelled') {
    setBar(form, 'import', end.progress, 'cancelled');
    showError(form, `The import of ${file.name} was cancelled.`);
  } else {
    setBar(form, 'import', end.progress, 'failed');
    showError(form, end.error.includes(file.name) ? end.error : `${file.name}: ${end.error}`);
  }
}

async function uploadLabels(form, file, data) {
  const answer = await send(form.dataset.api, data, (loaded, total) => {
    setBar(form, 'upload', loaded / total, loaded < total ? `${percent(loaded / total)} of ${megabytes(total)}`
      : 'measuring the nuclei…');
  });
  if (answer.status !== 201) throw new Error(messageOf(answer.status, answer.body, file.name));
  form.dataset.state = 'done';
  setBar(form, 'upload', 1, `${answer.body.name} made from ${file.name}`);
  window.location.reload();
}

async function submit(form) {
  const input = part(form, 'input[type="file"]');
  const file = input.files[0];
  part(form, '[data-error]').hidden = true;
  const done = part(form, '[data-done]');
  if (done) done.hidden = true;
  if (!file) {
    showError(form, 'Choose a file first (or drop one here).');
    return;
  }
  let data;
  try {
    data = formData(form, file);
  } catch (problem) {
    showError(form, problem.message);
    return;
  }
  const buttons = [...form.querySelectorAll('button[type="submit"]')];
  buttons.forEach((b) => { b.disabled = true; });
  form.dataset.state = 'sending';
  setBar(form, 'upload', 0, `0 % of ${megabytes(file.size)}`);
  if (part(form, '[data-bar="import"]')) setBar(form, 'import', 0, '—');
  try {
    if (form.classList.contains('volume-upload')) await uploadVolume(form, file, data);
    else await uploadLabels(form, file, data);
  } catch (problem) {
    showError(form, problem.message.includes(file.name) ? problem.message : `${file.name}: ${problem.message}`);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains('upload-form')) return;
  event.preventDefault();
  if (form.dataset.state === 'sending') return;
  submit(form);
});

// Drag and drop onto a [data-drop] zone: the dropped file becomes the picker's.
for (const zone of document.querySelectorAll('[data-drop]')) {
  const input = zone.querySelector('input[type="file"]');
  const text = zone.querySelector('[data-drop-text]');
  const shown = () => {
    if (input.files[0]) text.textContent = `${input.files[0].name} (${megabytes(input.files[0].size)})`;
  };
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('over');
    if (event.dataTransfer?.files?.length) {
      input.files = event.dataTransfer.files;
      shown();
    }
  });
  input.addEventListener('change', shown);
}

// Imports still under way when the page was rendered (a reload in the middle of a long one).
for (const row of document.querySelectorAll('[data-import-job]')) {
  if (!['queued', 'running'].includes(row.dataset.status)) continue;
  const list = row.closest('[data-job]');
  const url = list.dataset.job.replace(/\/0\/$/, `/${row.dataset.importJob}/`);
  const text = row.querySelector('[data-text]');
  (async () => {
    for (;;) {
      await sleep(POLL_MS * 2);
      let job;
      try {
        job = await api.get(url);
      } catch {
        continue; // the connection dropped: ask again
      }
      row.dataset.status = job.status;
      row.querySelector('progress').value = job.status === 'succeeded' ? 1 : job.progress;
      if (job.status === 'succeeded') {
        const link = document.createElement('a');
        link.href = list.dataset.viewer.replace(/\/0\/$/, `/${job.volume}/`);
        link.textContent = job.volume_name;
        text.replaceChildren(link);
        return;
      }
      if (!['queued', 'running'].includes(job.status)) {
        const why = document.createElement('span');
        why.className = 'error';
        why.textContent = job.error || job.status;
        text.replaceChildren(why);
        return;
      }
      text.textContent = `${job.status} · ${percent(job.progress)}${job.message ? ` · ${job.message}` : ''}`;
    }
  })();
}
