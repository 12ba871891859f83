// The signed upload -> start -> status flow, typed with the generated API types (type-checked by
// `make test`: tsc --noEmit). Works in a browser and in Node 20+ (fetch, File).
import type { components as Upload } from "./upload";
import type { components as Start, operations as StartOperations } from "./start";
import type { components as Status } from "./status";

type SignedUploadRequest = Upload["schemas"]["SignedUploadRequest"];
type SignedUploadResponse = Upload["schemas"]["SignedUploadResponse"];
type UploadResponse = Upload["schemas"]["UploadResponse"];
type StartResponse = Start["schemas"]["StartResponse"];
type StatusResponse = Status["schemas"]["StatusResponse"];
type ApiError = Status["schemas"]["Error"];
// The codes one operation can answer with one status, e.g. starting a failed job: "job_failed".
type StartConflict =
  StartOperations["startTraining"]["responses"][409]["content"]["application/json"]["error"]["code"];

/** The three Function URLs (each ends with "/"), e.g. from `make up`'s .local/stack.env. */
export interface Urls {
  upload: string;
  start: string;
  status: string;
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiError["error"]["code"],
    message: string,
  ) {
    super(message);
  }
}

async function call<T>(url: string, token: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(url, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
  });
  const body: unknown = await response.json();
  if (!response.ok) {
    const { error } = body as ApiError;
    throw new ApiFailure(response.status, error.code, error.message);
  }
  return body as T;
}

const sleep = (seconds: number) => new Promise((done) => setTimeout(done, seconds * 1000));

/** Upload `photos` (3-6) for a twin named `name`, train it, and follow it to the end. */
export async function trainTwin(
  urls: Urls,
  token: string,
  name: string,
  photos: File[],
): Promise<StatusResponse> {
  const request: SignedUploadRequest = {
    fursonaName: name,
    customizationData: { type: "fox", colors: ["orange"] },
    photos: photos.map((photo) => ({ filename: photo.name, contentType: photo.type, size: photo.size })),
  };
  const created = await call<SignedUploadResponse>(`${urls.upload}uploads`, token, {
    method: "POST",
    body: JSON.stringify(request),
  });
  // Each photo straight to Storage, with the Content-Type its target names; no Authorization.
  await Promise.all(
    created.uploads.map(async (target, index) => {
      const put = await fetch(target.url, {
        method: target.method,
        headers: { "Content-Type": target.contentType },
        body: photos[index],
      });
      if (!put.ok) throw new Error(`photo ${target.photo}: storage answered ${put.status}`);
    }),
  );
  const uploaded = await call<UploadResponse>(
    `${urls.upload}uploads/${created.jobId}/complete`,
    token,
    { method: "POST" },
  );
  try {
    const started = await call<StartResponse>(urls.start, token, {
      method: "POST",
      body: JSON.stringify({ jobId: uploaded.jobId }),
    });
    console.log(`training ${started.trainingId ?? "(starting)"}: ${started.progress}%`);
  } catch (failure) {
    const conflict: StartConflict | undefined =
      failure instanceof ApiFailure && failure.code === "job_failed" ? failure.code : undefined;
    if (conflict === undefined) throw failure;
  }
  for (;;) {
    const status = await call<StatusResponse>(
      `${urls.status}?jobId=${encodeURIComponent(uploaded.jobId)}`,
      token,
    );
    if (status.retryAfterSeconds === null) return status; // final: completed or failed
    console.log(`${status.status} ${status.progress}%`);
    await sleep(status.retryAfterSeconds);
  }
}
