import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { UserAuthority } from '../../src/user-authority/object';

/**
 * A stand-in for the USER_AUTHORITY namespace whose stubs call a fresh `UserAuthority` built with
 * `bindings`, over the real object's storage: how tests give the object another D1 (a faulty or
 * counting one) through its constructor, the only way in, since its members are private.
 */
export function authorityNamespaceWith(bindings: Env): DurableObjectNamespace<UserAuthority> {
  const real = env.USER_AUTHORITY;
  return {
    idFromName: (name: string) => real.idFromName(name),
    get: (id: DurableObjectId) =>
      new Proxy(
        {},
        {
          get: (_target, method) => (...args: unknown[]) =>
            runInDurableObject(real.get(id), (_instance, state) => {
              const instance = new UserAuthority(state, bindings) as unknown as Record<string | symbol, (...a: unknown[]) => unknown>;
              return (instance[method] as (...a: unknown[]) => unknown).apply(instance, args);
            }),
        },
      ),
  } as unknown as DurableObjectNamespace<UserAuthority>;
}
