/**
 * The forms of the project pages that call the REST API (frontend/templates/frontend/*.html),
 * bundled by esbuild into static/frontend/dist/actions.js (`make frontend`).
 *
 * A <form class="api-form" data-api="/api/v1/..."> is sent as JSON with the page's CSRF token
 * (<meta name="csrf-token">); its buttons are disabled while the request runs; an error is
 * shown in the form's [data-error] element as the server put it ({"message", "extra"}). On
 * success the page reloads, so what it shows comes from the server again; data-then="/path/{id}/"
 * goes there instead, {field} taken from the answer.
 *
 * A submit button may carry its own data-api (Approve and Reject share one comment field),
 * data-require="field" with data-require-message (a field that must not be empty for it), and
 * the form or the button data-confirm (a question asked first).
 *
 * Fields: a name with dots builds nested objects (params.training.steps). data-kind says how
 * a value is read: "int"; "ints" (every field of that name, one list; left out when all are
 * empty); "id-list" (whole numbers separated by commas or spaces); "int-or-null" (empty is
 * null); anything else is a string. Other empty fields are left out.
 */

import { ApiError, makeApi } from '../shared/api.js';

class FormProblem extends Error {}

const api = makeApi(); // whole paths, the token from <meta name="csrf-token">

function setPath(body, name, value) {
  const keys = name.split('.');
  let node = body;
  for (const key of keys.slice(0, -1)) {
    node[key] = node[key] ?? {};
    node = node[key];
  }
  node[keys[keys.length - 1]] = value;
}

function wholeNumber(text, what) {
  if (!/^\d+$/.test(text)) throw new FormProblem(`${what} must be a whole number, not "${text}".`);
  return Number(text);
}

function labelOf(field) {
  return field.dataset.label ?? field.labels?.[0]?.textContent.trim() ?? field.name;
}

/** The form's fields as the JSON body (see the module comment). */
export function bodyOf(form) {
  const body = {};
  const done = new Set();
  for (const field of form.elements) {
    if (!field.name || field.disabled || ['submit', 'button', 'reset'].includes(field.type)) continue;
    if (['checkbox', 'radio'].includes(field.type) && !field.checked) continue;
    const kind = field.dataset.kind ?? 'string';
    const text = field.value.trim();
    if (kind === 'ints') {
      if (done.has(field.name)) continue;
      done.add(field.name);
      const fields = [...form.elements].filter((f) => f.name === field.name);
      const texts = fields.map((f) => f.value.trim());
      if (texts.every((t) => t === '')) continue;
      if (texts.some((t) => t === '')) throw new FormProblem(`Fill in all of ${labelOf(fields[0])}, or none.`);
      setPath(body, field.name, texts.map((t) => wholeNumber(t, labelOf(fields[0]))));
    } else if (kind === 'int-or-null') {
      setPath(body, field.name, text === '' ? null : wholeNumber(text, labelOf(field)));
    } else if (text === '') {
      continue;
    } else if (kind === 'int') {
      setPath(body, field.name, wholeNumber(text, labelOf(field)));
    } else if (kind === 'id-list') {
      setPath(body, field.name, text.split(/[\s,]+/).filter(Boolean).map((t) => wholeNumber(t, labelOf(field))));
    } else {
      setPath(body, field.name, text);
    }
  }
  return body;
}

/** The server's error as one sentence: its message, and the fields a validation error names. */
function messageOf(status, data) {
  if (!data) return `The server answered ${status}.`;
  const parts = [data.message ?? data.detail ?? `The server answered ${status}`];
  const flatten = (value, prefix) => {
    if (Array.isArray(value)) {
      if (value.every((v) => typeof v === 'string')) parts.push(`${prefix}: ${value.join(' ')}`);
      else value.forEach((v, i) => flatten(v, `${prefix}[${i}]`));
    } else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key);
    } else if (value !== undefined && value !== null) {
      parts.push(`${prefix}: ${value}`);
    }
  };
  flatten(data.extra?.fields, '');
  return parts.join(' — ');
}

function errorElement(form) {
  let element = form.querySelector('[data-error]');
  if (!element) {
    element = document.createElement('p');
    element.className = 'error';
    element.dataset.error = '';
    element.setAttribute('role', 'alert');
    form.append(element);
  }
  return element;
}

async function send(form, submitter) {
  const url = submitter?.dataset.api ?? form.dataset.api;
  const error = errorElement(form);
  error.hidden = true;
  const buttons = [...form.querySelectorAll('button')].filter((b) => !b.disabled); // those it may enable again
  let body;
  try {
    body = bodyOf(form);
    const need = submitter?.dataset.require;
    if (need && (body[need] === undefined || body[need] === '')) {
      throw new FormProblem(submitter.dataset.requireMessage ?? `Fill in ${need} first.`);
    }
  } catch (problem) {
    error.textContent = problem.message;
    error.hidden = false;
    return;
  }
  const question = submitter?.dataset.confirm ?? form.dataset.confirm;
  if (question && !window.confirm(question)) return;

  buttons.forEach((b) => { b.disabled = true; });
  form.dataset.busy = 'true';
  form.setAttribute('aria-busy', 'true');
  try {
    let data;
    try {
      data = await api.post(url, body);
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
      // Unreached: the api's sentence; answered: the message and the fields it names.
      throw new FormProblem(failure.status === 0 ? failure.message : messageOf(failure.status, failure.body));
    }
    const then = submitter?.dataset.then ?? form.dataset.then;
    if (then) {
      window.location.assign(then.replace(/\{(\w+)\}/g, (_, key) => encodeURIComponent(data?.[key] ?? '')));
    } else {
      window.location.reload();
    }
    // The buttons stay disabled until the page is replaced: no second click sends it twice.
  } catch (problem) {
    error.textContent = problem.message;
    error.hidden = false;
    buttons.forEach((b) => { b.disabled = false; });
    form.dataset.busy = 'false';
    form.removeAttribute('aria-busy');
  }
}

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.classList.contains('api-form')) return;
  event.preventDefault();
  if (form.dataset.busy === 'true') return;
  send(form, event.submitter);
});
