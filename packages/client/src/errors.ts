/** An RFC 9457 problem document as latchkey answers it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  /** Stable and machine-readable (API.md): switch on this, never on the text. */
  code: string;
  detail: string;
}

/** A request latchkey answered with a problem document (or with something unexpected). */
export class LatchkeyError extends Error {
  /** The problem's `code`, or `http_<status>` when the answer was not a problem document. */
  readonly code: string;
  readonly status: number;
  readonly problem: Problem | null;

  constructor(status: number, problem: Problem | null) {
    super(problem ? `${problem.code}: ${problem.detail}` : `HTTP ${status}`);
    this.name = 'LatchkeyError';
    this.status = status;
    this.problem = problem;
    this.code = problem?.code ?? `http_${status}`;
  }
}

/** Reads the problem document of a failed answer without consuming the caller's copy. */
export async function readProblem(response: Response): Promise<Problem | null> {
  if (!(response.headers.get('content-type') ?? '').includes('application/problem+json')) return null;
  try {
    const body: unknown = await response.clone().json();
    if (typeof body === 'object' && body !== null && typeof (body as Problem).code === 'string') return body as Problem;
  } catch {
    // Not JSON after all: treated as no problem document.
  }
  return null;
}

/** Throws a `LatchkeyError` for a failed answer. */
export async function failure(response: Response): Promise<never> {
  throw new LatchkeyError(response.status, await readProblem(response));
}
