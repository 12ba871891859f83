// Every call the page makes: Supabase Auth, the three Function URLs and Storage's signed upload.
// Plain fetch/XMLHttpRequest against the public URLs, so a frontend can copy it as it is.
// Every failure becomes an ApiError whose message a person can read.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "network_error" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

const FINAL = new Set(["completed", "failed"]);
export const isFinal = (status) => FINAL.has(status);

// The readable message in any error body the stack sends: our API's {error:{code,message}},
// Supabase Auth's {code,message} or {msg}, Kong's {message}, Storage's {statusCode,error,message}.
function errorFrom(status, body, fallback) {
  if (body && typeof body === "object") {
    if (body.error && typeof body.error === "object") {
      return new ApiError(body.error.message || fallback, { status, code: body.error.code });
    }
    const message = body.message || body.msg || body.error_description || body.error;
    const code = typeof body.code === "string" ? body.code : body.error_code || body.error;
    if (message) return new ApiError(String(message), { status, code: String(code || status) });
  }
  return new ApiError(fallback, { status, code: String(status) });
}

async function send(url, { method = "GET", headers = {}, body } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    // fetch says only "Failed to fetch" for a refused connection or a CORS refusal.
    throw new ApiError(`Could not reach ${new URL(url).origin} (${err.message}). Is the stack up?`);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    throw errorFrom(response.status, parsed, `${method} ${url} answered HTTP ${response.status}.`);
  }
  return { status: response.status, body: parsed };
}

export function createApi(config) {
  const authHeaders = {
    apikey: config.supabaseAnonKey,
    // The API version supabase-js sends; Supabase Auth then answers errors as {code, message}.
    "X-Supabase-Api-Version": "2024-01-01",
  };
  const bearer = (session) => ({ Authorization: `Bearer ${session.access_token}` });
  const authUrl = (path) => `${config.supabaseUrl.replace(/\/$/, "")}/auth/v1/${path}`;
  const under = (base, path) => new URL(path, base).toString();

  return {
    statusRefreshSeconds: config.statusRefreshSeconds ?? 5,

    /** Supabase Auth sign-up (e-mail + password); answers a session when no confirmation is needed. */
    async signUp(email, password) {
      const { body } = await send(authUrl("signup"), {
        method: "POST",
        headers: authHeaders,
        body: { email, password, data: {} },
      });
      if (!body.access_token) {
        throw new ApiError("Check your e-mail to confirm the account, then sign in.", { code: "confirm_email" });
      }
      return body;
    },

    /** Supabase Auth password sign-in: {access_token, expires_at, refresh_token, user, ...}. */
    async signIn(email, password) {
      const { body } = await send(`${authUrl("token")}?grant_type=password`, {
        method: "POST",
        headers: authHeaders,
        body: { email, password },
      });
      return body;
    },

    /**
     * POST /uploads: a job in "uploading" and one signed upload target per photo. With a twinId
     * the job is that twin's next version (it keeps the twin's name and customisation).
     */
    async createUploads(session, fursonaName, files, { twinId = null } = {}) {
      const photos = files.map((file) => ({
        filename: file.name,
        contentType: file.type || "application/octet-stream",
        size: file.size,
      }));
      const body = twinId ? { twinId, photos } : { fursonaName, customizationData: {}, photos };
      return (await send(under(config.uploadUrl, "uploads"), { method: "POST", headers: bearer(session), body })).body;
    },

    /** PUT one photo straight to Storage at its signed URL; onProgress(sentBytes, totalBytes). */
    putPhoto(target, file, onProgress) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open(target.method || "PUT", target.url);
        xhr.setRequestHeader("Content-Type", target.contentType);
        xhr.upload.onprogress = (event) => {
          if (event.lengthComputable) onProgress(event.loaded, event.total);
        };
        xhr.onload = () => {
          let body = null;
          try {
            body = JSON.parse(xhr.responseText);
          } catch {
            body = xhr.responseText;
          }
          if (xhr.status >= 200 && xhr.status < 300) {
            onProgress(file.size, file.size);
            resolve(body);
          } else {
            reject(errorFrom(xhr.status, body, `Storage refused photo ${target.photo} (HTTP ${xhr.status}).`));
          }
        };
        xhr.onerror = () => reject(new ApiError(`Photo ${target.photo} could not be sent to Storage.`));
        xhr.send(file);
      });
    },

    /** POST /uploads/{jobId}/complete: the photos are checked; the job becomes "pending". */
    async completeUploads(session, jobId) {
      const url = under(config.uploadUrl, `uploads/${encodeURIComponent(jobId)}/complete`);
      return (await send(url, { method: "POST", headers: bearer(session) })).body;
    },

    /** POST start_ai_training {jobId}: safe to repeat. */
    async startTraining(session, jobId) {
      return (await send(config.startUrl, { method: "POST", headers: bearer(session), body: { jobId } })).body;
    },

    /**
     * GET check_training_status ?jobId=: {status, phase, phaseText, step, totalSteps, progress,
     * estimatedCompletion, errorMessage, modelVersion}; with {history: true} also `history`:
     * {startedAt, seconds[], steps[], loss[], stepsPerSecond[]} (parallel arrays).
     */
    async getStatus(session, jobId, { history = false } = {}) {
      const url = `${config.statusUrl}?jobId=${encodeURIComponent(jobId)}${history ? "&history=1" : ""}`;
      return (await send(url, { headers: bearer(session) })).body;
    },

    /** POST /cancel {jobId}: the training stops; the job ends "failed" with "Canceled by user.". */
    async cancelTraining(session, jobId) {
      const url = under(config.statusUrl, "cancel");
      return (await send(url, { method: "POST", headers: bearer(session), body: { jobId } })).body;
    },

    /** GET /twins: {twins: [{twinId, name, activeJobId, activeVersion, versions: [{jobId, version, active, status, phaseText, ...}]}]}. */
    async listTwins(session) {
      return (await send(under(config.statusUrl, "twins"), { headers: bearer(session) })).body.twins;
    },

    /** PUT /twins/{twinId}/active {jobId}: roll back (or forward) to a completed version. */
    async activateVersion(session, twinId, jobId) {
      const url = under(config.statusUrl, `twins/${encodeURIComponent(twinId)}/active`);
      return (await send(url, { method: "PUT", headers: bearer(session), body: { jobId } })).body;
    },

    /**
     * POST /twins/{twinId}/previews {style?, requestId}: new pictures of the active version; the
     * answer is the set ({status, ready, total, pictures: [{status, url, prompt, errorMessage}]}).
     * The same requestId again (a retry, a double click) answers the same set, counted once.
     */
    async requestPreviews(session, twinId, { style = null, requestId = crypto.randomUUID() } = {}) {
      const url = under(config.statusUrl, `twins/${encodeURIComponent(twinId)}/previews`);
      const body = style ? { style, requestId } : { requestId };
      return (await send(url, { method: "POST", headers: bearer(session), body })).body;
    },

    /** DELETE ?jobId=: {deleted, deletionRequestedAt, deletedAt}; 202 while the sweep finishes. */
    async deleteJob(session, jobId) {
      const url = `${config.statusUrl}?jobId=${encodeURIComponent(jobId)}`;
      return (await send(url, { method: "DELETE", headers: bearer(session) })).body;
    },
  };
}

export async function loadConfig() {
  const { body } = await send(new URL("config.json", document.baseURI).toString());
  return body;
}
