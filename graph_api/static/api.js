// Talking to the API: GraphQL over fetch, the multipart upload, authenticated blob URLs and a
// hand-written graphql-transport-ws client. Every request carries `Authorization: Bearer <key>`
// when a key is set.

const KEY_STORAGE = "audio-engine.apiKey";

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** One or more errors as the API reports them: `{code, message}` each. */
export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => `${e.code}: ${e.message}`).join("\n"));
    this.errors = errors;
  }
}

function fromGraphQL(errors) {
  return new ApiError(
    errors.map((e) => ({ code: e.extensions?.code ?? "ERROR", message: e.message ?? String(e) })),
  );
}

async function readBody(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { code: `HTTP_${response.status}`, message: text.slice(0, 300) || response.statusText };
  }
}

async function check(response) {
  const body = await readBody(response);
  if (body.errors?.length) throw fromGraphQL(body.errors);
  if (!body.data) {
    throw new ApiError([
      { code: body.code ?? `HTTP_${response.status}`, message: body.message ?? body.detail ?? "" },
    ]);
  }
  return body.data;
}

export async function graphql(query, variables = {}) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify({ query, variables }),
  });
  return check(response);
}

/** A GraphQL multipart request (graphql-multipart-request-spec) with one file. */
export async function uploadFile(query, file) {
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { file: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.file"] }));
  form.append("0", file, file.name);
  const response = await fetch("/graphql", {
    method: "POST",
    // The API's CSRF guard wants this on multipart requests.
    headers: { "Apollo-Require-Preflight": "true", ...authHeaders() },
    body: form,
  });
  return check(response);
}

/** A blob URL of a GET resource, fetched with the key (`<img>`/`<audio>` send no headers). */
export async function blobUrl(path) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) {
    const body = await readBody(response);
    throw new ApiError([
      { code: body.code ?? `HTTP_${response.status}`, message: body.message ?? path },
    ]);
  }
  return URL.createObjectURL(await response.blob());
}

/**
 * Run one subscription over graphql-transport-ws. Handlers: next(data), error(ApiError),
 * complete(), closed(event) when the socket ends before `complete`. Returns a stop function.
 */
export function subscribe(query, variables, handlers) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/graphql`, "graphql-transport-ws");
  const id = crypto.randomUUID ? crypto.randomUUID() : String(Date.now());
  let finished = false;
  const send = (message) => socket.send(JSON.stringify(message));
  const finish = () => {
    finished = true;
    socket.close(1000, "done");
  };

  socket.addEventListener("open", () => {
    const key = apiKey();
    send({ type: "connection_init", payload: key ? { Authorization: `Bearer ${key}` } : {} });
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    switch (message.type) {
      case "connection_ack":
        send({ id, type: "subscribe", payload: { query, variables } });
        break;
      case "ping":
        send({ type: "pong", payload: message.payload });
        break;
      case "next":
        if (message.id !== id) break;
        if (message.payload?.errors?.length) handlers.error?.(fromGraphQL(message.payload.errors));
        if (message.payload?.data) handlers.next?.(message.payload.data);
        break;
      case "error":
        if (message.id !== id) break;
        finish();
        handlers.error?.(fromGraphQL(Array.isArray(message.payload) ? message.payload : []));
        break;
      case "complete":
        if (message.id !== id) break;
        finish();
        handlers.complete?.();
        break;
      default:
        break;
    }
  });
  socket.addEventListener("close", (event) => {
    if (!finished) {
      finished = true;
      handlers.closed?.(event);
    }
  });
  return () => {
    if (finished) return;
    finished = true;
    if (socket.readyState === WebSocket.OPEN) send({ id, type: "complete" });
    socket.close(1000, "stopped");
  };
}
