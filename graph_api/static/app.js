// The page: pick or upload a file, build a chain, submit, follow the job, compare.

import { ApiError, apiKey, blobUrl, graphql, setApiKey, subscribe, uploadFile } from "./api.js";
import { effectForm, el } from "./form.js";

const PARAM = `name description type unit min max minExclusive maxExclusive belowNyquist
  default required nullable choices typeName`;
const EFFECTS = `query Effects {
  effects { name description params { ${PARAM} fields { ${PARAM} fields { ${PARAM} } } } }
}`;
const FILE = "id filename format subtype sampleRate channels durationSeconds sizeBytes";
const FILES = `query Files { jobs(first: 100) { edges { node {
  id input { ${FILE} } output { ${FILE} } } } } }`;
const OUTPUT_ENUMS = `query OutputEnums {
  formats: __type(name: "AudioFormat") { enumValues { name } }
  subtypes: __type(name: "SampleFormat") { enumValues { name } }
}`;
const UPLOAD = `mutation Upload($file: Upload!) { uploadAudio(file: $file) { ${FILE} } }`;
const JOB = `id status progress message error { code message } input { ${FILE} } output { ${FILE} }`;
const SUBMIT = `mutation Submit($input: JobInput!) { submitJob(input: $input) { ${JOB} } }`;
const CANCEL = `mutation Cancel($id: ID!) { cancelJob(id: $id) { id status } }`;
const WATCH = `subscription Watch($id: ID!) {
  jobUpdates(jobId: $id) { status progress message job { ${JOB} } }
}`;
const BATCH = `id status progress jobs { id status error { code message } input { ${FILE} } output { ${FILE} } }`;
const SUBMIT_BATCH = `mutation SubmitBatch($input: BatchInput!) { submitBatch(input: $input) { ${BATCH} } }`;
const CANCEL_BATCH = `mutation CancelBatch($id: ID!) { cancelBatch(id: $id) { id status } }`;
const WATCH_BATCH = `subscription WatchBatch($id: ID!) {
  batchUpdates(batchId: $id) { status progress done total batch { ${BATCH} } }
}`;
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
const NO_SUBTYPE = new Set(["OGG", "MP3"]);

const $ = (selector) => document.querySelector(selector);
const files = new Map();
const filesListeners = [];
const chain = [];
let catalog = [];
let selected = null;
let job = null;
let stopWatching = null;
let batch = null;
let stopWatchingBatch = null;

// ---- errors -------------------------------------------------------------------------------

function showErrors(error) {
  const box = $("#errors");
  const list =
    error instanceof ApiError ? error.errors : [{ code: "ERROR", message: String(error?.message ?? error) }];
  box.replaceChildren(
    el("h2", { text: list.length > 1 ? "Errors" : "Error" }),
    el("ul", {}, ...list.map((e) => el("li", {}, el("code", { class: "code", text: e.code }), ` ${e.message}`))),
    el("button", { type: "button", class: "link", text: "Dismiss", onclick: clearErrors }),
  );
  box.hidden = false;
}

function clearErrors() {
  $("#errors").hidden = true;
  $("#errors").replaceChildren();
}

async function attempt(action) {
  try {
    return await action();
  } catch (error) {
    showErrors(error);
    return undefined;
  }
}

// ---- files --------------------------------------------------------------------------------

function describe(file) {
  const seconds = file.durationSeconds.toFixed(file.durationSeconds < 10 ? 2 : 1);
  return `${file.filename} · ${seconds} s · ${file.sampleRate} Hz · ${file.channels} ch · ${file.format}/${file.subtype}`;
}

function remember(file) {
  files.set(file.id, file);
}

function renderFileOptions() {
  const select = $("#file-select");
  const current = selected?.id ?? select.value;
  select.replaceChildren(el("option", { value: "", text: "Choose a file…" }));
  for (const file of files.values()) select.append(el("option", { value: file.id, text: describe(file) }));
  select.value = files.has(current) ? current : "";
  const several = $("#batch-files");
  const chosen = new Set([...several.selectedOptions].map((o) => o.value));
  several.replaceChildren(
    ...[...files.values()].map((file) =>
      el("option", { value: file.id, text: describe(file), selected: chosen.has(file.id) }),
    ),
  );
  filesListeners.forEach((listener) => listener());
}

// Uploads no job has used yet appear in no list the API offers: remember their ids here.
const UPLOADS_STORAGE = "audio-engine.uploads";
const MAX_REMEMBERED = 30;

function rememberedUploads() {
  try {
    const ids = JSON.parse(localStorage.getItem(UPLOADS_STORAGE) ?? "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}

function rememberUpload(id) {
  const ids = [id, ...rememberedUploads().filter((other) => other !== id)].slice(0, MAX_REMEMBERED);
  localStorage.setItem(UPLOADS_STORAGE, JSON.stringify(ids));
}

async function loadUploads() {
  const ids = rememberedUploads();
  if (!ids.length) return;
  const vars = ids.map((_, i) => `$f${i}: ID!`).join(", ");
  const fields = ids.map((_, i) => `f${i}: file(id: $f${i}) { ${FILE} }`).join("\n");
  const variables = Object.fromEntries(ids.map((id, i) => [`f${i}`, id]));
  const data = await graphql(`query Uploads(${vars}) { ${fields} }`, variables);
  // Deleted, or another key's: forget it.
  const alive = ids.filter((_, i) => data[`f${i}`]);
  localStorage.setItem(UPLOADS_STORAGE, JSON.stringify(alive));
  ids.forEach((_, i) => data[`f${i}`] && remember(data[`f${i}`]));
}

async function loadFiles() {
  const data = await graphql(FILES);
  await loadUploads();
  for (const { node } of data.jobs.edges) {
    remember(node.input);
    if (node.output) remember(node.output);
  }
  renderFileOptions();
}

function select(file) {
  selected = file;
  $("#file-select").value = file ? file.id : "";
  $("#file-info").textContent = file ? `Selected: ${describe(file)}` : "";
  showSide($("#before"), file);
  updateSubmit();
}

async function upload(input) {
  const file = input.files?.[0];
  if (!file) return;
  $("#file-info").textContent = `Uploading ${file.name}…`;
  const data = await attempt(() => uploadFile(UPLOAD, file));
  if (!data) {
    $("#file-info").textContent = "";
    return;
  }
  remember(data.uploadAudio);
  rememberUpload(data.uploadAudio.id);
  renderFileOptions();
  select(data.uploadAudio);
  $("#file-info").textContent = `Uploaded: ${describe(data.uploadAudio)}`;
}

// ---- before / after -----------------------------------------------------------------------

const blobs = new WeakMap();

function release(side) {
  for (const url of blobs.get(side) ?? []) URL.revokeObjectURL(url);
  blobs.set(side, []);
}

async function sourceUrl(side, path) {
  const url = await blobUrl(path);
  blobs.get(side).push(url);
  return url;
}

/** Fill one side of the comparison; a later call for the same side wins. */
async function showSide(side, file) {
  const token = Symbol("show");
  side.token = token;
  release(side);
  const audio = side.querySelector("audio");
  const images = side.querySelectorAll("img");
  const download = side.querySelector("a");
  const name = side.querySelector('[data-role="name"]');
  audio.removeAttribute("src");
  audio.load();
  images.forEach((img) => {
    img.hidden = true;
    img.removeAttribute("src");
  });
  if (download) download.hidden = true;
  if (!file) return;
  name.textContent = describe(file);
  side.setAttribute("aria-busy", "true");
  try {
    // <audio> and <img> send no headers: with a key, fetch with it and use blob URLs; without
    // one, let the player stream (and seek with Range requests).
    const audioUrl = apiKey() ? await sourceUrl(side, `/files/${file.id}`) : `/files/${file.id}`;
    if (side.token !== token) return;
    audio.src = audioUrl;
    if (download) {
      download.href = audioUrl;
      download.download = file.filename;
      download.hidden = false;
    }
    for (const img of images) {
      const url = await sourceUrl(side, `/files/${file.id}/${img.dataset.kind}.png`);
      if (side.token !== token) return;
      img.src = url;
      img.hidden = false;
    }
  } catch (error) {
    if (side.token === token) showErrors(error);
  } finally {
    if (side.token === token) side.removeAttribute("aria-busy");
  }
}

// ---- chain --------------------------------------------------------------------------------

const formContext = {
  sampleRate: () => selected?.sampleRate ?? 0,
  impulseChoices: () => [...files.values()].map((f) => ({ id: f.id, label: f.filename })),
  onFilesChanged: (listener) => filesListeners.push(listener),
};

function renumber() {
  chain.forEach((entry, i) => entry.setIndex(i, chain.length));
  $("#chain").replaceChildren(...chain.map((entry) => entry.element));
  $("#chain-empty").hidden = chain.length > 0;
  updateSubmit();
}

const chainActions = {
  move(entry, delta) {
    const i = chain.indexOf(entry);
    const j = i + delta;
    if (j < 0 || j >= chain.length) return;
    [chain[i], chain[j]] = [chain[j], chain[i]];
    renumber();
    entry.element.querySelector(delta < 0 ? "button[aria-label*=' up']" : "button[aria-label*=' down']")?.focus();
  },
  remove(entry) {
    chain.splice(chain.indexOf(entry), 1);
    renumber();
    $("#effect-add").focus();
  },
};

function addEffect(name) {
  const effect = catalog.find((e) => e.name === name);
  if (!effect) return;
  const entry = effectForm(effect, formContext, chainActions);
  chain.push(entry);
  renumber();
  entry.element.querySelector("input, select")?.focus();
}

async function loadCatalog() {
  const data = await graphql(EFFECTS);
  catalog = data.effects;
  const select = $("#effect-add");
  select.replaceChildren(...catalog.map((e) => el("option", { value: e.name, text: e.name })));
  effectHint();
}

function effectHint() {
  const name = $("#effect-add").value;
  $("#effect-hint").textContent = catalog.find((e) => e.name === name)?.description ?? "";
}

async function loadOutputEnums() {
  let formats = ["WAV", "FLAC", "OGG", "MP3", "AIFF", "CAF", "W64"];
  let subtypes = ["PCM_16", "PCM_24", "PCM_32", "FLOAT"];
  try {
    const data = await graphql(OUTPUT_ENUMS);
    formats = data.formats?.enumValues.map((v) => v.name) ?? formats;
    subtypes = data.subtypes?.enumValues.map((v) => v.name) ?? subtypes;
  } catch {
    // Introspection may be off in production: the schema's own values above then apply.
  }
  $("#output-format").replaceChildren(...formats.map((f) => el("option", { value: f, text: f })));
  $("#output-subtype").replaceChildren(...subtypes.map((s) => el("option", { value: s, text: s })));
  $("#output-format").value = "WAV";
  $("#output-subtype").value = "FLOAT";
}

// ---- jobs ---------------------------------------------------------------------------------

function updateSubmit() {
  const running = job && !TERMINAL.has(job.status);
  $("#submit").disabled = !selected || running;
  const batchRunning = batch && !TERMINAL.has(batch.status);
  $("#submit-batch").disabled = !$("#batch-files").selectedOptions.length || batchRunning;
}

function showJob(status, progress, message) {
  const badge = $("#job-status");
  badge.textContent = status;
  badge.dataset.status = status;
  const percent = Math.round(Math.max(0, Math.min(1, progress)) * 100);
  $("#progress").value = percent;
  $("#progress-text").textContent = `${percent}%`;
  $("#job-message").textContent = message ?? "";
  $("#cancel").hidden = TERMINAL.has(status);
}

function finished(current) {
  updateSubmit();
  if (current.status === "SUCCEEDED" && current.output) {
    remember(current.output);
    renderFileOptions();
    showSide($("#after"), current.output);
  } else if (current.status === "FAILED" && current.error) {
    showErrors(new ApiError([current.error]));
  }
}

function watch(jobId, retries = 5) {
  stopWatching?.();
  stopWatching = subscribe(WATCH, { id: jobId }, {
    next(data) {
      const event = data.jobUpdates;
      job = event.job;
      showJob(event.status, event.progress, event.message || event.job.message);
      if (TERMINAL.has(event.status)) finished({ ...event.job, status: event.status });
    },
    error: showErrors,
    complete() {
      stopWatching = null;
    },
    closed(event) {
      stopWatching = null;
      if (job && TERMINAL.has(job.status)) return;
      if (retries > 0) {
        $("#job-message").textContent = "Connection lost; reconnecting…";
        setTimeout(() => watch(jobId, retries - 1), 1000);
      } else {
        showErrors(new ApiError([{ code: `WS_CLOSED_${event.code}`, message: event.reason || "the live updates stopped" }]));
      }
    },
  });
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  if (!selected) return;
  const problems = [];
  const effects = chain.map((entry, i) => entry.read(problems, i));
  if (problems.length) {
    showErrors(new ApiError(problems.map((message) => ({ code: "INVALID_FORM", message }))));
    return;
  }
  const format = $("#output-format").value;
  const output = { format, subtype: $("#output-subtype").value };
  $("#submit").disabled = true;
  const data = await attempt(() => graphql(SUBMIT, { input: { fileId: selected.id, effects, output } }));
  if (!data) {
    updateSubmit();
    return;
  }
  job = data.submitJob;
  $("#job-id").textContent = `job ${job.id}`;
  showJob(job.status, job.progress, job.message);
  showSide($("#after"), null);
  $("#after").querySelector('[data-role="name"]').textContent = "Processing…";
  updateSubmit();
  watch(job.id);
}

// ---- batches ------------------------------------------------------------------------------

function showBatch(current, status, progress) {
  batch = { ...current, status };
  $("#batch").hidden = false;
  const badge = $("#batch-status");
  badge.textContent = status;
  badge.dataset.status = status;
  const percent = Math.round(Math.max(0, Math.min(1, progress)) * 100);
  $("#batch-progress").value = percent;
  $("#batch-progress-text").textContent = `${percent}%`;
  $("#cancel-batch").hidden = TERMINAL.has(status);
  $("#batch-jobs").replaceChildren(
    ...current.jobs.map((j) =>
      el(
        "li",
        { "data-status": j.status },
        `${j.input.filename}: `,
        el("span", { class: "badge", "data-status": j.status, text: j.status }),
        j.error ? ` ${j.error.code}: ${j.error.message}` : "",
      ),
    ),
  );
  for (const j of current.jobs) if (j.output) remember(j.output);
  if (TERMINAL.has(status)) renderFileOptions();
  updateSubmit();
}

function watchBatch(batchId) {
  stopWatchingBatch?.();
  stopWatchingBatch = subscribe(WATCH_BATCH, { id: batchId }, {
    next(data) {
      const event = data.batchUpdates;
      showBatch(event.batch, event.status, event.progress);
    },
    error: showErrors,
    complete() {
      stopWatchingBatch = null;
    },
  });
}

async function submitBatch() {
  clearErrors();
  const fileIds = [...$("#batch-files").selectedOptions].map((o) => o.value);
  if (!fileIds.length) return;
  const problems = [];
  const effects = chain.map((entry, i) => entry.read(problems, i));
  if (problems.length) {
    showErrors(new ApiError(problems.map((message) => ({ code: "INVALID_FORM", message }))));
    return;
  }
  const output = { format: $("#output-format").value, subtype: $("#output-subtype").value };
  const album = $("#album").checked;
  $("#submit-batch").disabled = true;
  const data = await attempt(() => graphql(SUBMIT_BATCH, { input: { fileIds, effects, output, album } }));
  if (!data) {
    updateSubmit();
    return;
  }
  const made = data.submitBatch;
  $("#batch-id").textContent = `batch ${made.id}`;
  showBatch(made, made.status, made.progress);
  watchBatch(made.id);
}

// ---- start --------------------------------------------------------------------------------

function setUpKey() {
  const input = $("#api-key");
  input.value = apiKey();
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    $("#key-state").textContent = input.value.trim() ? "Saved" : "Cleared";
    start();
  });
}

async function start() {
  clearErrors();
  files.clear();
  await attempt(async () => {
    await Promise.all([loadCatalog(), loadOutputEnums(), loadFiles()]);
  });
}

function wire() {
  setUpKey();
  $("#file-select").addEventListener("change", (e) => select(files.get(e.target.value) ?? null));
  $("#refresh-files").addEventListener("click", () => attempt(loadFiles));
  $("#upload").addEventListener("change", (e) => upload(e.target));
  $("#add-effect").addEventListener("click", () => addEffect($("#effect-add").value));
  $("#effect-add").addEventListener("change", effectHint);
  $("#job-form").addEventListener("submit", submit);
  $("#output-format").addEventListener("change", (e) => {
    $("#output-subtype").disabled = NO_SUBTYPE.has(e.target.value);
    // FLAC has no float samples: offer its own default rather than a refusal.
    if (e.target.value === "FLAC" && $("#output-subtype").value === "FLOAT") {
      $("#output-subtype").value = "PCM_24";
    }
  });
  $("#cancel").addEventListener("click", () => job && attempt(() => graphql(CANCEL, { id: job.id })));
  $("#batch-files").addEventListener("change", updateSubmit);
  $("#submit-batch").addEventListener("click", submitBatch);
  $("#cancel-batch").addEventListener("click", () => batch && attempt(() => graphql(CANCEL_BATCH, { id: batch.id })));
  blobs.set($("#before"), []);
  blobs.set($("#after"), []);
  renumber();
}

wire();
start();
