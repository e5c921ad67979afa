// Where the last processed eventID of a (user, device) is kept between
// connections and page loads, so that a login resumes from it.

/** A place to keep one string per key. May be synchronous or not. */
export interface EventIDStore {
  get(key: string): string | null | undefined | Promise<string | null | undefined>;
  set(key: string, value: string): void | Promise<void>;
}

/** Keeps eventIDs for the life of the process (the default under Node). */
export class MemoryStore implements EventIDStore {
  private readonly values = new Map<string, string>();
  get(key: string): string | undefined {
    return this.values.get(key);
  }
  set(key: string, value: string): void {
    this.values.set(key, value);
  }
}

interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Keeps eventIDs in a Web Storage (the default in browsers: localStorage). */
export class WebStorageStore implements EventIDStore {
  constructor(private readonly storage: StorageLike) {}
  get(key: string): string | null {
    try {
      return this.storage.getItem(key);
    } catch {
      return null; // storage disabled (private mode): resume from memory only
    }
  }
  set(key: string, value: string): void {
    try {
      this.storage.setItem(key, value);
    } catch {
      // quota or disabled storage: the in-memory value still serves this page
    }
  }
}

/** localStorage where there is one that works, else memory. */
export function defaultStore(): EventIDStore {
  try {
    const ls = (globalThis as { localStorage?: StorageLike }).localStorage;
    if (ls) {
      const probe = "signald:probe";
      ls.setItem(probe, "1");
      ls.getItem(probe);
      return new WebStorageStore(ls);
    }
  } catch {
    // fall through
  }
  return new MemoryStore();
}
