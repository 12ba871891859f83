// The page: sign in, choose photos, upload them through the signed flow, start, follow the job.
// All network calls are in api.js; the chart is chart.js. Each panel has its own render function
// so later panels can be added beside them.

import { ApiError, createApi, isFinal, loadConfig } from "./api.js";
import { drawLineChart } from "./chart.js";

const MIN_PHOTOS = 3;
const MAX_PHOTOS = 6;
const $ = (id) => document.getElementById(id);

const state = {
  api: null,
  session: null,
  files: [],
  jobId: null,
  startedAt: 0,
  points: [],
  history: null,
  pollTimer: null,
  busy: false,
  retrain: null, // {twinId, name}: the next upload is this twin's next version
  twins: [],
};

function say(id, text, isError = false) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", isError);
}

const messageOf = (err) => (err instanceof ApiError ? err.message : `Unexpected error: ${err.message}`);

// --------------------------------------------------------------------------- account

function renderAccount() {
  const signedIn = state.session !== null;
  $("sign-in-form").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  $("user-email").textContent = signedIn ? state.session.user.email : "";
  $("twins").hidden = !signedIn;
  if (signedIn) loadTwins();
  renderPhotos();
}

async function authenticate(kind) {
  const email = $("email").value.trim();
  const password = $("password").value;
  if (!email || !password) {
    say("account-message", "Enter an e-mail address and a password (at least 6 characters).", true);
    return;
  }
  say("account-message", kind === "up" ? "Creating the user…" : "Signing in…");
  try {
    state.session = kind === "up" ? await state.api.signUp(email, password) : await state.api.signIn(email, password);
    say("account-message", kind === "up" ? "Test user created; you are signed in." : "Signed in.");
  } catch (err) {
    say("account-message", messageOf(err), true);
  }
  renderAccount();
}

// --------------------------------------------------------------------------- photos

function setFiles(fileList) {
  for (const item of $("photo-list").querySelectorAll("img")) URL.revokeObjectURL(item.src);
  state.files = Array.from(fileList);
  const list = $("photo-list");
  list.replaceChildren();
  state.files.forEach((file, index) => {
    const item = document.createElement("li");
    const thumb = document.createElement("img");
    thumb.src = URL.createObjectURL(file);
    thumb.alt = "";
    const name = document.createElement("span");
    name.textContent = `${file.name} (${(file.size / 1024).toFixed(0)} kB)`;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    bar.id = `photo-progress-${index + 1}`;
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    item.append(thumb, name, bar);
    list.append(item);
  });
  renderPhotos();
}

const countOk = () => state.files.length >= MIN_PHOTOS && state.files.length <= MAX_PHOTOS;

function renderUploadButton() {
  $("upload").disabled = state.busy || !state.session || !countOk();
}

function renderPhotos() {
  const count = state.files.length;
  renderUploadButton();
  if (!state.session) say("photos-message", "Sign in first.");
  else if (count === 0) say("photos-message", `Choose ${MIN_PHOTOS} to ${MAX_PHOTOS} photos of the same person.`);
  else if (!countOk()) say("photos-message", `You chose ${count} photos; choose ${MIN_PHOTOS} to ${MAX_PHOTOS}.`, true);
  else say("photos-message", `${count} photos ready.`);
}

function photoProgress(index, sent, total) {
  $(`photo-progress-${index}`).value = total ? Math.round((sent / total) * 100) : 100;
}

async function uploadAndStart(event) {
  event.preventDefault();
  const name = $("twin-name").value.trim();
  if (!name && !state.retrain) {
    say("photos-message", "Give your twin a name.", true);
    return;
  }
  state.busy = true;
  renderUploadButton();
  try {
    say("photos-message", "Asking for upload URLs…");
    const job = await state.api.createUploads(state.session, name, state.files, {
      twinId: state.retrain?.twinId ?? null,
    });
    say("photos-message", `Uploading ${job.uploads.length} photos straight to Storage…`);
    await Promise.all(
      job.uploads.map((target, i) =>
        state.api.putPhoto(target, state.files[i], (sent, total) => photoProgress(target.photo, sent, total)),
      ),
    );
    say("photos-message", "Checking the photos…");
    const pending = await state.api.completeUploads(state.session, job.jobId);
    $("photo-input").value = ""; // the next choice starts afresh (the list keeps these bars)
    beginJob(pending.jobId);
    renderStatus(pending); // pending, with its twin's version number
    say("photos-message", "Photos accepted. Starting the training…");
    const started = await state.api.startTraining(state.session, pending.jobId);
    renderStatus(started);
    say("photos-message", started.status === "queued" ? "In line for training." : "Training started.");
    setRetrain(null);
    loadTwins();
    poll();
  } catch (err) {
    say("photos-message", messageOf(err), true);
  } finally {
    state.busy = false;
    renderUploadButton();
  }
}

// --------------------------------------------------------------------------- training

function beginJob(jobId) {
  stopPolling();
  state.jobId = jobId;
  state.startedAt = Date.now();
  state.points = [];
  state.history = null;
  $("training").hidden = false;
  $("job-id").textContent = jobId;
  // Nothing of the previous job stays on screen.
  for (const id of ["job-version", "status", "phase", "eta", "model-version", "queue"]) $(id).textContent = "–";
  $("status").dataset.status = "";
  $("phase").dataset.phase = "";
  $("queue").dataset.position = "";
  $("progress").value = 0;
  $("progress-text").textContent = "0%";
  $("cancel").disabled = false;
  $("delete").disabled = false;
  say("training-message", "");
}

function formatEta(iso, status) {
  if (!iso || isFinal(status)) return "–";
  const at = new Date(iso);
  const seconds = Math.max(0, Math.round((at.getTime() - Date.now()) / 1000));
  const left = seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
  return `about ${left} (at ${at.toLocaleTimeString()})`;
}

function renderStatus(job) {
  $("status").textContent = job.status;
  $("status").dataset.status = job.status;
  if (job.version) $("job-version").textContent = String(job.version);
  // A queued job's place in line and the sentence to show (null for any other status).
  $("queue").textContent = job.queue ? `number ${job.queue.position}: ${job.queue.message}` : "–";
  $("queue").dataset.position = job.queue ? String(job.queue.position) : "";
  // The start answer has no phase yet; every status answer does.
  if (job.phase) {
    $("phase").textContent = job.phaseText;
    $("phase").dataset.phase = job.phase;
  }
  $("progress").value = job.progress;
  $("progress-text").textContent = `${job.progress}%`;
  $("eta").textContent = formatEta(job.estimatedCompletion, job.status);
  $("model-version").textContent = job.modelVersion || "–";
  if (job.errorMessage) say("training-message", job.errorMessage, job.status === "failed");
  $("cancel").disabled = isFinal(job.status);

  state.points.push({ x: (Date.now() - state.startedAt) / 1000, y: job.progress });
  if (job.history) state.history = job.history; // a cancel's answer carries none: keep the last
  renderChart();
  if (job.previews !== undefined) {
    $("previews-figure").hidden = !job.previews;
    if (job.previews) renderPreviewSet($("previews"), $("previews-caption"), job.previews);
  }
}

// A set of pictures: each ready one from its short-lived signed URL (our private copy, never
// Replicate's), a placeholder with the reason for the others.
function renderPreviewSet(box, caption, set) {
  box.dataset.status = set.status;
  box.dataset.ready = String(set.ready);
  const shown = new Map(Array.from(box.querySelectorAll("img"), (img) => [img.dataset.previewId, img]));
  box.replaceChildren(
    ...set.pictures.map((picture) => {
      if (picture.status === "ready" && picture.url) {
        // Keep an image already loaded: a new signed URL for the same picture changes nothing.
        const img = shown.get(picture.previewId) ?? document.createElement("img");
        if (!img.src) img.src = picture.url;
        img.alt = picture.prompt;
        img.dataset.previewId = picture.previewId;
        return img;
      }
      const missing = document.createElement("div");
      missing.className = "missing";
      missing.dataset.previewId = picture.previewId;
      missing.textContent = picture.status === "failed" ? picture.errorMessage || "Not made" : "Painting…";
      return missing;
    }),
  );
  const words = { pending: "on their way", ready: "ready", partly_ready: "partly ready", failed: "could not be made" };
  caption.textContent = `Pictures ${words[set.status] ?? set.status}: ${set.ready} of ${set.total}`;
}

// The trainer's loss over its steps once the history has points; progress over time before.
function renderChart() {
  const history = state.history;
  const loss = history
    ? history.steps.map((step, i) => ({ x: step, y: history.loss[i] })).filter((p) => p.y !== null)
    : [];
  const chart = $("chart");
  if (loss.length > 0) {
    chart.dataset.source = "history";
    $("chart-caption").textContent = "The trainer's loss over its steps (each point the mean of its steps)";
    const ys = loss.map((p) => p.y);
    drawLineChart(chart, loss, {
      xLabel: "step",
      yLabel: "loss",
      yMin: Math.floor(Math.min(...ys) * 10) / 10,
      yMax: Math.ceil(Math.max(...ys) * 10) / 10,
      describe: (pts) => `Loss over steps: ${pts.length} points, latest ${pts.at(-1).y} at step ${pts.at(-1).x}`,
    });
    return;
  }
  chart.dataset.source = "progress";
  $("chart-caption").textContent = "Progress (%) over seconds since the upload finished";
  drawLineChart(chart, state.points, {
    xLabel: "seconds",
    yLabel: "%",
    yMin: 0,
    yMax: 100,
    describe: (pts) => `Progress over time: ${pts.length} readings, latest ${pts.at(-1)?.y ?? 0}%`,
  });
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
}

// Reads the status every statusRefreshSeconds (the backend reads Replicate at most that often)
// until the job is final; a failed read is shown and retried at the same pace.
async function poll() {
  stopPolling();
  const jobId = state.jobId;
  try {
    const job = await state.api.getStatus(state.session, jobId, { history: true });
    if (jobId !== state.jobId) return;
    renderStatus(job);
    // A completed job's first pictures may still be coming: follow them too.
    const picturesComing = job.previews?.status === "pending";
    if (isFinal(job.status) && !picturesComing) {
      loadTwins(); // a completed version is now its twin's active one
      return;
    }
  } catch (err) {
    say("training-message", messageOf(err), true);
    if (err.status === 404 || err.status === 401) return;
  }
  state.pollTimer = setTimeout(poll, Math.max(1, state.api.statusRefreshSeconds) * 1000);
}

async function cancel() {
  $("cancel").disabled = true;
  try {
    renderStatus(await state.api.cancelTraining(state.session, state.jobId));
    stopPolling();
  } catch (err) {
    say("training-message", messageOf(err), true);
    $("cancel").disabled = false;
  }
}

async function remove() {
  $("delete").disabled = true;
  $("cancel").disabled = true;
  stopPolling();
  try {
    const result = await state.api.deleteJob(state.session, state.jobId);
    say(
      "training-message",
      result.deleted ? "Deleted: the job, its photos and its model are gone." : "Deletion requested; the rest is removed within minutes.",
    );
    $("status").textContent = "deleted";
    $("status").dataset.status = "deleted";
  } catch (err) {
    say("training-message", messageOf(err), true);
    $("delete").disabled = false;
  }
}

// --------------------------------------------------------------------------- twins

function setRetrain(twin) {
  state.retrain = twin ? { twinId: twin.twinId, name: twin.name } : null;
  $("retrain-note").hidden = !state.retrain;
  $("new-twin").hidden = Boolean(state.retrain);
  $("retrain-name").textContent = state.retrain ? state.retrain.name : "";
  $("upload").textContent = state.retrain ? "Upload and train a new version" : "Upload and start training";
  if (state.retrain) $("photos").scrollIntoView({ behavior: "smooth" });
}

async function loadTwins() {
  if (!state.session) return;
  try {
    state.twins = await state.api.listTwins(state.session);
    renderTwins();
  } catch (err) {
    say("twins-message", messageOf(err), true);
  }
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
  return td;
}

function renderTwins() {
  const list = $("twin-list");
  list.replaceChildren();
  if (state.twins.length === 0) {
    say("twins-message", "No twins yet: upload photos above to make your first.");
    return;
  }
  say("twins-message", "");
  for (const twin of state.twins) {
    const box = document.createElement("article");
    box.className = "twin";
    box.dataset.twinId = twin.twinId;
    const title = document.createElement("h3");
    title.textContent = `${twin.name}: ${twin.activeVersion ? `version ${twin.activeVersion} active` : "no version ready yet"}`;
    const retrain = document.createElement("button");
    retrain.type = "button";
    retrain.className = "retrain";
    retrain.textContent = "Train a new version";
    // One version on its way at a time: the API would answer 409 twin_busy.
    retrain.disabled = twin.versions.some((v) => !isFinal(v.status));
    retrain.addEventListener("click", () => setRetrain(twin));

    const table = document.createElement("table");
    table.className = "versions";
    const head = table.createTHead().insertRow();
    for (const name of ["Version", "Status", "Finished", ""]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.append(th);
    }
    const body = table.createTBody();
    for (const version of twin.versions) {
      const row = body.insertRow();
      row.dataset.jobId = version.jobId;
      row.dataset.version = String(version.version);
      row.dataset.active = String(version.active);
      row.dataset.status = version.status;
      row.classList.toggle("active", version.active);
      cell(row, `v${version.version}${version.active ? " (active)" : ""}`);
      cell(row, version.phaseText || version.status);
      cell(row, version.completedAt ? new Date(version.completedAt).toLocaleString() : "–");
      const actions = cell(row, "");
      if (version.status === "completed" && !version.active) {
        const activate = document.createElement("button");
        activate.type = "button";
        activate.className = "activate";
        activate.textContent = version.version < (twin.activeVersion ?? 0) ? "Roll back to this" : "Make active";
        activate.addEventListener("click", () => makeActive(twin, version, activate));
        actions.append(activate);
      }
    }
    const actions = [retrain];
    const active = twin.versions.find((v) => v.active);
    if (active && active.previews !== undefined) {
      const more = document.createElement("button");
      more.type = "button";
      more.className = "more-previews";
      more.textContent = "New pictures";
      more.addEventListener("click", () => morePreviews(twin, more));
      actions.push(more);
    }
    box.append(title, table, ...actions);
    // The active version's newest set of pictures (its first ones, or the latest request).
    const newest = active?.previews?.[0];
    if (newest) {
      const gallery = document.createElement("div");
      gallery.className = "previews";
      const caption = document.createElement("p");
      renderPreviewSet(gallery, caption, newest);
      box.append(gallery, caption);
    }
    list.append(box);
  }
}

async function morePreviews(twin, button) {
  button.disabled = true;
  try {
    const set = await state.api.requestPreviews(state.session, twin.twinId);
    say("twins-message", `${set.total} new pictures of ${twin.name} ${set.status === "ready" ? "are ready" : "are on their way"}.`);
    await loadTwins();
    // Still painting: look again at the status pace until the set is final.
    if (set.status === "pending") setTimeout(loadTwins, Math.max(1, state.api.statusRefreshSeconds) * 1000);
  } catch (err) {
    say("twins-message", messageOf(err), true); // e.g. the day's limit reached
  } finally {
    button.disabled = false;
  }
}

async function makeActive(twin, version, button) {
  button.disabled = true;
  try {
    const updated = await state.api.activateVersion(state.session, twin.twinId, version.jobId);
    state.twins = state.twins.map((t) => (t.twinId === updated.twinId ? updated : t));
    renderTwins();
    say("twins-message", `${updated.name} now uses version ${updated.activeVersion}.`);
  } catch (err) {
    say("twins-message", messageOf(err), true);
    button.disabled = false;
  }
}

// --------------------------------------------------------------------------- wiring

async function main() {
  try {
    state.api = createApi(await loadConfig());
  } catch (err) {
    say("account-message", `The page's configuration did not load: ${messageOf(err)}`, true);
    return;
  }
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    authenticate("in");
  });
  $("sign-up").addEventListener("click", () => authenticate("up"));
  $("sign-out").addEventListener("click", () => {
    state.session = null;
    stopPolling();
    renderAccount();
  });
  $("photo-input").addEventListener("change", (e) => setFiles(e.target.files));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    setFiles(e.dataTransfer.files);
  });
  $("upload-form").addEventListener("submit", uploadAndStart);
  $("cancel").addEventListener("click", cancel);
  $("delete").addEventListener("click", remove);
  $("twins-refresh").addEventListener("click", loadTwins);
  $("retrain-clear").addEventListener("click", () => setRetrain(null));
  document.body.dataset.ready = "true";
  renderAccount();
}

main();
