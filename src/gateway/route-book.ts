/**
 * Routes declared once, with the zod schemas that validate them: the same declaration registers
 * the Express handler and the OpenAPI operation, so the document cannot drift from the router.
 */
import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { parseOr400 } from './errors.js';
import type { Role } from '../custody/actions.js';
import { requireRole } from './middleware.js';

export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Express syntax (`/stories/:id`), relative to the router's mount point. */
  path: string;
  summary: string;
  tag: string;
  /** Roles allowed; omitted means any authenticated caller. */
  roles?: Role[];
  /** False for the few calls that take no API key. */
  auth?: boolean;
  body?: z.ZodType;
  query?: z.ZodType;
  /** Status of a success (200 unless it creates). */
  status?: 200 | 201;
  /** Error codes this route may answer with, beyond the common ones. */
  errors?: string[];
}

const NoBody = z.strictObject({});

const refuseAnyField: RequestHandler = (req, _res, next) => {
  parseOr400(NoBody, req.body ?? {});
  next();
};

export class RouteBook {
  readonly router = Router();
  readonly specs: RouteSpec[] = [];

  constructor(readonly prefix: string) {}

  add(declared: RouteSpec, handler: RequestHandler): this {
    // A POST that takes nothing still says so: `{}` or no body, never fields it would ignore.
    const spec = declared.method === 'post' && !declared.body ? { ...declared, body: NoBody } : declared;
    this.specs.push(spec);
    const guards: RequestHandler[] = spec.roles ? [requireRole(...spec.roles)] : [];
    if (spec.body === NoBody) guards.push(refuseAnyField);
    this.router[spec.method](spec.path, ...guards, handler);
    return this;
  }
}
