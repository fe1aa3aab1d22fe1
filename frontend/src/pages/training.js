/**
 * The training page (training.html): live progress and the loss curve of the project's
 * training jobs, from the WebSocket ws/projects/<id>/training/ (segmentation/consumers.py).
 *
 * The page starts from the jobs the server rendered (<script id="training-config">, each in the
 * socket's message shape: {id, status, progress, message, error, loss: [[step, loss], ...],
 * steps, model_version}); each message replaces one job's state. The curve shows the newest
 * job, or the one whose "Curve" button was pressed. When a job ends, or a new one starts, a
 * notice offers to reload the page (its tables and model versions come from the server).
 * The socket reconnects after a drop; a refusal (4401 signed out, 4403 not staff) is shown.
 *
 * The curve is drawn twice: the raw loss of each step, thin and pale (a small batch makes it
 * jump), and beside it the loss smoothed by an exponential moving average (weight
 * SMOOTHING, corrected for its start as TensorBoard does), which shows the trend.
 *
 * Bundled by esbuild into static/frontend/dist/training.js (`make frontend`).
 */

import { keepSocket } from '../shared/socket.js';

const FINISHED = ['succeeded', 'failed', 'cancelled'];
const SMOOTHING = 0.8;
const $ = (id) => document.getElementById(id);

const config = JSON.parse($('training-config').textContent);
const jobs = new Map(config.jobs.map((job) => [job.id, job]));
let shown = config.jobs.length ? Math.max(...jobs.keys()) : null;

function notice(text) {
  $('live-notice-text').textContent = text;
  $('live-notice').hidden = false;
}
$('live-reload').addEventListener('click', () => window.location.reload());

function describe(job) {
  const parts = [job.status];
  if (job.status === 'running' || job.status === 'queued') parts.push(`${Math.round(job.progress * 100)} %`);
  if (job.message && job.message !== job.status) parts.push(job.message);
  const last = job.loss?.[job.loss.length - 1];
  if (last) parts.push(`loss ${last[1].toFixed(4)} at step ${last[0]}${job.steps ? ` of ${job.steps}` : ''}`);
  if (job.model_version) parts.push(`model version ${job.model_version}`);
  if (job.error) parts.push(job.error);
  return parts.join(' · ');
}

/** [[step, loss], ...] smoothed by an exponential moving average with bias correction. */
export function smoothed(points, weight = SMOOTHING) {
  let average = 0;
  return points.map(([step, loss], i) => {
    average = weight * average + (1 - weight) * loss;
    return [step, average / (1 - weight ** (i + 1))];
  });
}

/** The loss by step: axes with the first and last step and the loss range, and the curve. */
function drawCurve(canvas, job) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 720;
  const height = canvas.clientHeight || 260;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = '#5b6476';
  const points = job?.loss ?? [];
  if (points.length === 0) {
    ctx.fillText(job ? 'No loss reported yet.' : 'No training yet.', 16, height / 2);
    canvas.dataset.points = '0';
    return;
  }
  const left = 56;
  const right = width - 16;
  const top = 14;
  const bottom = height - 30;
  const steps = points.map((p) => p[0]);
  const losses = points.map((p) => p[1]);
  const x0 = Math.min(0, ...steps);
  const x1 = Math.max(job.steps ?? 0, ...steps, x0 + 1);
  let y0 = Math.min(...losses);
  let y1 = Math.max(...losses);
  if (y1 - y0 < 1e-9) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const X = (s) => left + ((s - x0) / (x1 - x0)) * (right - left);
  const Y = (l) => bottom - ((l - y0) / (y1 - y0)) * (bottom - top);

  ctx.strokeStyle = '#dde1ea';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, top);
  ctx.lineTo(left, bottom);
  ctx.lineTo(right, bottom);
  ctx.stroke();
  ctx.textAlign = 'right';
  ctx.fillText(y1.toPrecision(3), left - 6, top + 10);
  ctx.fillText(y0.toPrecision(3), left - 6, bottom);
  ctx.textAlign = 'center';
  ctx.fillText(String(x0), left, bottom + 18);
  ctx.fillText(String(x1), right, bottom + 18);
  ctx.fillText('step', (left + right) / 2, bottom + 18);
  ctx.save();
  ctx.translate(14, (top + bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText('loss', 0, 0);
  ctx.restore();

  const line = (series, colour, width) => {
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.beginPath();
    series.forEach(([s, l], i) => (i === 0 ? ctx.moveTo(X(s), Y(l)) : ctx.lineTo(X(s), Y(l))));
    ctx.stroke();
  };
  const smooth = smoothed(points);
  line(points, 'rgba(15, 138, 106, 0.35)', 1);
  line(smooth, '#0b6a51', 2.5);
  canvas.dataset.smoothed = String(smooth.length);
  canvas.dataset.lastSmoothed = smooth[smooth.length - 1][1].toPrecision(6);
  if (points.length === 1) {
    ctx.fillStyle = '#0f8a6a';
    ctx.beginPath();
    ctx.arc(X(steps[0]), Y(losses[0]), 3, 0, 2 * Math.PI);
    ctx.fill();
  }
  canvas.dataset.points = String(points.length);
}

function render() {
  const job = shown === null ? null : jobs.get(shown);
  $('live-job').textContent = job ? `job #${job.id}` : '';
  $('live-progress').value = job ? job.progress : 0;
  $('live-text').textContent = job ? describe(job) : 'No training yet.';
  const live = $('live');
  live.dataset.job = job ? String(job.id) : '';
  live.dataset.status = job ? job.status : 'none';
  drawCurve($('loss-curve'), job);
  document.querySelectorAll('[data-show-job]').forEach((button) => {
    button.setAttribute('aria-pressed', String(Number(button.dataset.showJob) === shown));
  });
}

function updateRow(job) {
  const row = document.querySelector(`tr[data-job="${job.id}"]`);
  if (!row) return false;
  const status = row.querySelector('[data-field="status"]');
  status.textContent = job.status;
  status.className = `badge job-${job.status}`;
  row.querySelector('[data-field="progress"]').value = job.progress;
  const message = row.querySelector('[data-field="message"]');
  message.textContent = job.error || job.message;
  message.classList.toggle('error', Boolean(job.error));
  if (job.model_version) row.querySelector('[data-field="model"]').textContent = `v${job.model_version}`;
  if (FINISHED.includes(job.status)) {
    row.querySelectorAll('form[data-active-only]').forEach((form) => { form.hidden = true; });
  }
  return true;
}

function receive(state) {
  if (state.type !== 'job' || state.kind !== 'training') return;
  const before = jobs.get(state.id);
  // A message carries the tail of the curve only: keep the earlier points this page has.
  const first = state.loss?.[0]?.[0];
  if (before?.loss && first !== undefined) state.loss = [...before.loss.filter((p) => p[0] < first), ...state.loss];
  else if (before?.loss && !state.loss?.length) state.loss = before.loss;
  jobs.set(state.id, state);
  const known = updateRow(state);
  if (!before && !known) {
    shown = state.id; // a job started elsewhere (another admin, the nightly schedule): follow it
    notice(`Training job #${state.id} started. Reload to see it in the list.`);
  } else if (before && !FINISHED.includes(before.status) && FINISHED.includes(state.status)) {
    notice(state.status === 'succeeded'
      ? `Training job #${state.id} finished${state.model_version ? `: model version ${state.model_version}` : ''}. Reload to see its scores.`
      : `Training job #${state.id} ${state.status}${state.error ? `: ${state.error}` : ''}.`);
  }
  if (state.id === shown || shown === null) {
    shown = state.id;
    render();
  }
}

function connect() {
  keepSocket({
    path: config.websocket,
    what: 'training page',
    maxRetryMs: 30000,
    onMessage: receive,
    onOpen: () => { $('live-connection').textContent = 'live: progress arrives as it happens'; },
    onRefused: (code) => {
      $('live-connection').textContent = code === 4401
        ? 'Not live: your session has ended. Sign in again.'
        : 'Not live: this project\'s trainings are for its instructors and admins.';
    },
    onDrop: (retryMs) => {
      $('live-connection').textContent = `Not live: connection lost; trying again in ${Math.round(retryMs / 1000)} s.`;
    },
  });
}

document.querySelectorAll('[data-show-job]').forEach((button) => {
  button.addEventListener('click', () => {
    shown = Number(button.dataset.showJob);
    render();
  });
});
window.addEventListener('resize', () => drawCurve($('loss-curve'), shown === null ? null : jobs.get(shown)));

render();
connect();
