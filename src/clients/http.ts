/** A small client of the HTTP API, shared by the MCP server and the CLI. */
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface PageMeta {
  limit?: number;
  next_cursor?: string | null;
  total_count?: number;
  offset?: number;
}

export class CustodyApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly context: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export class CustodyClient {
  constructor(
    readonly baseUrl: string,
    private readonly key: string | undefined,
  ) {}

  async request<T = unknown>(method: Method, path: string, body?: unknown): Promise<T> {
    return (await this.send<T>(method, path, body)).data as T;
  }

  /** A list: its rows and its `meta` (limit, next_cursor, total_count where the route counts). */
  async page<T = unknown>(path: string): Promise<{ data: T[]; meta: PageMeta }> {
    const body = await this.send<T[]>('GET', path);
    return { data: body.data ?? [], meta: body.meta ?? {} };
  }

  private async send<T>(method: Method, path: string, body?: unknown): Promise<{ data?: T; meta?: PageMeta }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(new URL(`/api/v1${path}`, this.baseUrl), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (err) {
      throw new CustodyApiError(
        0,
        'unreachable',
        `cannot reach ${this.baseUrl}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const text = await res.text();
    let json: {
      data?: T;
      meta?: PageMeta;
      error?: { code?: string; message?: string; context?: Record<string, unknown> };
    };
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new CustodyApiError(
        res.status,
        'bad_response',
        `the server answered ${res.status} with something that is not JSON`,
      );
    }
    if (!res.ok) {
      throw new CustodyApiError(
        res.status,
        json.error?.code ?? `http_${res.status}`,
        json.error?.message ?? res.statusText,
        json.error?.context,
      );
    }
    return json;
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T = unknown>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  put<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }
}

/** `?a=1&b=2` from the defined values only. */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined) as [string, string | number | boolean][];
  return entries.length
    ? `?${new URLSearchParams(entries.map(([k, v]): [string, string] => [k, String(v)])).toString()}`
    : '';
}
