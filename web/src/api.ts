// The console's only way to the server: the public HTTP API, with the signed-in key.
// Nothing here is possible for the console that is not possible with curl.

import { SseEvent, SseParser } from "./sse";

const KEY = "aiaas.key";

/** An error answer of the API, carrying its own message (shown to the user as is). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** The signed-in key lives in session storage only: never in a URL, gone with the tab. */
export const session = {
  key(): string | null {
    return sessionStorage.getItem(KEY);
  },
  signIn(key: string) {
    sessionStorage.setItem(KEY, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY);
  },
};

/** Where the server is: the console is served by it, so the page's own origin. */
export function baseUrl(): string {
  return window.location.origin;
}

function headers(extra?: Record<string, string>, key = session.key()): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

/** The message of an error answer: the API's own (`error.message`), else the status. */
export async function errorFrom(resp: Response): Promise<ApiError> {
  let message = `${resp.status} ${resp.statusText}`.trim();
  let code: string | undefined;
  try {
    const body = await resp.json();
    const err = body?.error;
    if (typeof err === "string") message = err;
    else if (err && typeof err.message === "string") {
      message = err.message;
      code = typeof err.code === "string" ? err.code : undefined;
    } else if (typeof body?.reason === "string") {
      // /readyz: {"status": "not ready", "reason": ...}
      message = body.reason;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (resp.status === 401) onUnauthorized?.(message);
  return new ApiError(resp.status, message, code);
}

/** Called when the key is refused (expired, revoked): the app signs out. */
export let onUnauthorized: ((message: string) => void) | undefined;
export function setUnauthorizedHandler(f: (message: string) => void) {
  onUnauthorized = f;
}

export interface RequestOptions {
  signal?: AbortSignal;
  /** Use this key instead of the signed-in one (sign-in checks a key before storing it). */
  key?: string;
}

/** A JSON call; resolves to the parsed body (undefined for 204). */
export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  opts: RequestOptions = {},
): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      headers: headers(body === undefined ? undefined : { "Content-Type": "application/json" }, opts.key ?? session.key()),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "The server cannot be reached. Is aiaas still running?");
  }
  if (!resp.ok) throw await errorFrom(resp);
  if (resp.status === 204) return undefined as T;
  const text = await resp.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A multipart form POST (files); resolves to the parsed JSON answer. */
export async function postForm<T = unknown>(path: string, form: FormData): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(path, { method: "POST", headers: headers(), body: form });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Is aiaas still running?");
  }
  if (!resp.ok) throw await errorFrom(resp);
  return (await resp.json()) as T;
}

/** A plain-text GET (e.g. /metrics). */
export async function text(path: string, opts: RequestOptions = {}): Promise<string> {
  let resp: Response;
  try {
    resp = await fetch(path, { headers: headers(), signal: opts.signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "The server cannot be reached. Is aiaas still running?");
  }
  if (!resp.ok) throw await errorFrom(resp);
  return resp.text();
}

/**
 * A streaming call answered with server-sent events: yields each event as it arrives.
 * Abort through `signal` (the server frees the request's resources on disconnect).
 */
export async function* stream(
  method: string,
  path: string,
  body: unknown | undefined,
  opts: RequestOptions & { lastEventId?: string } = {},
): AsyncGenerator<SseEvent> {
  const extra: Record<string, string> = { Accept: "text/event-stream" };
  if (body !== undefined) extra["Content-Type"] = "application/json";
  if (opts.lastEventId) extra["Last-Event-ID"] = opts.lastEventId;
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      headers: headers(extra),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") return;
    throw new ApiError(0, "The server cannot be reached. Is aiaas still running?");
  }
  if (!resp.ok) throw await errorFrom(resp);
  if (!resp.body) return;
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const ev of parser.push(value)) yield ev;
    }
  } catch (e) {
    if ((e as Error).name !== "AbortError") throw e;
  } finally {
    reader.releaseLock();
  }
}

/** Upload a file as the raw request body, reporting progress (0..1). */
export function upload<T>(
  path: string,
  file: Blob,
  onProgress: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    const key = session.key();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body: any;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : undefined;
      } catch {
        body = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body as T);
      } else {
        const err = body?.error;
        const message =
          typeof err === "string" ? err : err?.message ?? `${xhr.status} ${xhr.statusText}`;
        if (xhr.status === 401) onUnauthorized?.(message);
        reject(new ApiError(xhr.status, message, err?.code));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "The upload failed: the server cannot be reached."));
    xhr.onabort = () => reject(new DOMException("aborted", "AbortError"));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

/** Download an authenticated resource as a file (the key cannot go in a link's URL). */
export async function download(path: string, filename: string): Promise<void> {
  const resp = await fetch(path, { headers: headers() });
  if (!resp.ok) throw await errorFrom(resp);
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The message to show for any failure. */
export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
